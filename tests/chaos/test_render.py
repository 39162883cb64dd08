"""tools/scripts/reliability_table.py: the README's reliability table comes from the reports
ChaosReport writes, and only from them (no stack: pure rendering)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
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


def write_report(directory: Path, test: str, *, ok: bool, tier: str = "pr") -> None:
    report = ChaosReport(test, tier=tier, plans=3)
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
    return (
        f"# tripmesh\n\nintro\n\n<!-- reliability:begin -->\n{body}\n<!-- reliability:end -->\n\nmiddle\n\n"
        f"<!-- reliability-full:begin -->\nold full\n<!-- reliability-full:end -->\n\nafter\n"
    )


def test_a_row_per_report_with_its_counts_faults_latency_and_verdict(
    render: ModuleType, tmp_path: Path
) -> None:
    write_report(tmp_path, "runner_kill_storm", ok=True)
    write_report(tmp_path, "nats_restart", ok=False)
    (tmp_path / "broken.json").write_text("{not json")
    table = render.table(render.load_reports(tmp_path))
    caption, blank, *lines = table.splitlines()
    assert caption.startswith("Measured 20") and "commit " in caption and blank == ""
    assert lines[:2] == list(render.HEADER)
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["nats restart", "runner kill storm"]
    storm = lines[3]
    assert "nats_kill, 2 x sigkill" in storm
    assert "| 1,200 | 0 | 4 | 0 | 7 |" in storm
    assert "2.0 s / 3.0 s" in storm and "4.0 s / 9.5 s" in storm
    assert storm.endswith("| 2/2 | pass |")
    assert lines[2].endswith("| 1/2 | FAIL: 0 duplicate ledger rows |")


def test_the_readme_block_is_replaced_and_check_sees_staleness(render: ModuleType, tmp_path: Path) -> None:
    reports, full, doc = tmp_path / "reports", tmp_path / "full", tmp_path / "README.md"
    reports.mkdir()
    full.mkdir()
    write_report(reports, "postgres_down", ok=True)
    write_report(full, "poison", ok=True, tier="full")
    doc.write_text(readme())
    argv = ["--reports", str(reports), "--full-reports", str(full), "--readme", str(doc)]
    assert render.main([*argv, "--check"]) == 1
    assert render.main(argv) == 0
    text = doc.read_text()
    assert "old table" not in text and "old full" not in text
    pr_block, full_block = text.split("middle")
    assert "| postgres down | pr |" in pr_block and "poison" not in pr_block
    assert "| poison | full |" in full_block and "postgres down" not in full_block
    assert text.startswith("# tripmesh\n\nintro\n") and text.endswith(
        "<!-- reliability-full:end -->\n\nafter\n"
    )
    assert render.main([*argv, "--check"]) == 0
    assert render.main(argv) == 0 and doc.read_text() == text  # idempotent


def test_no_reports_says_so_and_a_readme_without_markers_is_an_error(
    render: ModuleType, tmp_path: Path
) -> None:
    assert "make test-chaos" in render.table([])
    with pytest.raises(ValueError, match="reliability:begin"):
        render.splice("# no markers\n", "x")
    with pytest.raises(ValueError, match="reliability-full:begin"):
        render.splice("# no markers\n", "x", "reliability-full")
    json.dumps(render.load_reports(tmp_path))  # empty dir: []


def test_each_tier_writes_its_own_directory_and_records_the_commit(tmp_path: Path) -> None:
    pr, full = ChaosReport("poison", tier="pr"), ChaosReport("poison", tier="full")
    assert pr.path.parent.name == "reliability" and full.path.parent.name == "reliability-full"
    code = pr.as_dict()["code"]
    assert set(code) == {"commit", "dirty"}
    assert code["commit"] is None or len(code["commit"]) >= 7


def test_provenance_names_the_days_and_every_commit(render: ModuleType) -> None:
    reports = [
        {"started_at": "2026-12-04T10:00:00Z", "code": {"commit": "abc1234", "dirty": False}},
        {"started_at": "2026-12-05T01:00:00Z", "code": {"commit": "def5678", "dirty": True}},
        {"started_at": "2026-12-05T02:00:00Z"},
    ]
    line = render.provenance(reports)
    assert (
        line == "Measured 2026-12-04 to 2026-12-05, commit abc1234, def5678 (work tree changed), unrecorded."
    )


def test_a_report_calls_the_tree_changed_for_code_but_not_for_reports(tmp_path: Path) -> None:
    """A full-tier run rewrites committed reports test after test; those must not mark the
    later reports' code as changed, while any other edit must."""
    from report import _code_version

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)  # fmt: skip

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "a.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    assert _code_version(tmp_path)["dirty"] is False
    (tmp_path / "reports" / "a.json").write_text('{"rewritten": true}')
    assert _code_version(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert _code_version(tmp_path)["dirty"] is True
