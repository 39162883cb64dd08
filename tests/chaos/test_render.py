"""tools/scripts/reliability_table.py: the README's reliability table comes from the reports
ChaosReport writes, and only from them (no stack: pure rendering)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from report import ChaosReport

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "scripts" / "reliability_table.py"


@pytest.fixture(scope="module")
def render() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reliability_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["reliability_table"] = module
    spec.loader.exec_module(module)
    return module


def write_report(directory: Path, test: str, *, ok: bool) -> None:
    report = ChaosReport(test, tier="pr", plans=3)
    report.path = directory / f"{test}.json"
    report.fault("sigkill", target="agent-runner#1")
    report.fault("sigkill", target="agent-runner#2")
    report.fault("nats_kill", down_seconds=10)
    report.count(attempted=1200, lost=0, duplicates_suppressed=4, dead_lettered=0, redelivered=7)
    report.latencies("baseline", [1.0, 2.0, 3.0])
    report.latencies("faulted", [2.0, 4.0, 9.5])
    report.check("every plan terminal", True)
    report.check("0 duplicate ledger rows", ok, {"rows": 3})
    report.write()


def readme(body: str = "old table") -> str:
    return f"# tripmesh\n\nintro\n\n<!-- reliability:begin -->\n{body}\n<!-- reliability:end -->\n\nafter\n"


def test_a_row_per_report_with_its_counts_faults_latency_and_verdict(
    render: ModuleType, tmp_path: Path
) -> None:
    write_report(tmp_path, "runner_kill_storm", ok=True)
    write_report(tmp_path, "nats_restart", ok=False)
    (tmp_path / "broken.json").write_text("{not json")
    table = render.table(render.load_reports(tmp_path))
    lines = table.splitlines()
    assert lines[:2] == list(render.HEADER)
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["nats restart", "runner kill storm"]
    storm = lines[3]
    assert "nats_kill, 2 x sigkill" in storm
    assert "| 1,200 | 0 | 4 | 0 | 7 |" in storm
    assert "2.0 s / 3.0 s" in storm and "4.0 s / 9.5 s" in storm
    assert storm.endswith("| 2/2 | pass |")
    assert lines[2].endswith("| 1/2 | FAIL: 0 duplicate ledger rows |")


def test_the_readme_block_is_replaced_and_check_sees_staleness(render: ModuleType, tmp_path: Path) -> None:
    reports, doc = tmp_path / "reports", tmp_path / "README.md"
    reports.mkdir()
    write_report(reports, "postgres_down", ok=True)
    doc.write_text(readme())
    argv = ["--reports", str(reports), "--readme", str(doc)]
    assert render.main([*argv, "--check"]) == 1
    assert render.main(argv) == 0
    text = doc.read_text()
    assert "old table" not in text and "| postgres down | pr |" in text
    assert text.startswith("# tripmesh\n\nintro\n") and text.endswith("<!-- reliability:end -->\n\nafter\n")
    assert render.main([*argv, "--check"]) == 0
    assert render.main(argv) == 0 and doc.read_text() == text  # idempotent


def test_no_reports_says_so_and_a_readme_without_markers_is_an_error(
    render: ModuleType, tmp_path: Path
) -> None:
    assert "make test-chaos" in render.table([])
    with pytest.raises(ValueError, match="reliability:begin"):
        render.splice("# no markers\n", "x")
    json.dumps(render.load_reports(tmp_path))  # empty dir: []
