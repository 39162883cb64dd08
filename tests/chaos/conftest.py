"""The reliability battery (issue #12): shared options and fixtures.

`--chaos-tier=pr` (default; what `make test` and CI run) or `full` (`make test-chaos-full`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # report.py and the harness import by name


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-tier",
        choices=("pr", "full"),
        default="pr",
        help="reliability battery tier: pr (CI, ~15 min) or full (larger counts, longer outages)",
    )


@pytest.fixture(scope="session")
def tier(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--chaos-tier", default="pr"))
