"""Render the reliability battery's reports as the README's tables (issue #12).

The PR tier's reports (reports/reliability/*.json) go between `<!-- reliability:begin -->`
and `<!-- reliability:end -->`; the full tier's (reports/reliability-full/*.json) between
`<!-- reliability-full:begin -->` and `<!-- reliability-full:end -->`. Each block is replaced
whole, so the README can only claim what a report holds. One row per report: the test and
its tier, the faults injected, the counts, plan latency p50/p99 without and with faults, and
how many oracles held (a failing oracle is named); above it, when and at which commit the
reports were measured. The reports are committed, so `--check` (run by `make lint`) ties the
README to them.

    uv run python tools/scripts/reliability_table.py             # rewrite README.md
    uv run python tools/scripts/reliability_table.py --check     # exit 1 if README is stale
    uv run python tools/scripts/reliability_table.py --print     # the table only
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPT_NAME = "tools/scripts/reliability_table.py"
BLOCKS = {
    "reliability": ROOT / "reports" / "reliability",
    "reliability-full": ROOT / "reports" / "reliability-full",
}
"""README block name -> the directory of reports it renders."""
HEADER = (
    "| test | tier | faults | plans | lost | duplicates suppressed | dead-lettered | redelivered "
    "| p50 / p99 baseline | p50 / p99 faulted | oracles | result |",
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
)


def load_reports(directory: Path) -> list[dict[str, Any]]:
    """Every report in `directory`, ordered by test name (unreadable files are skipped)."""
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            report = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(report, dict) and "test" in report:
            out.append(report)
    return sorted(out, key=lambda r: str(r["test"]))


def _count(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


def _latency(block: dict[str, Any] | None) -> str:
    if not block or block.get("p50") is None:
        return "-"
    return f"{block['p50']:.1f} s / {block['p99']:.1f} s"


def _faults(faults: list[dict[str, Any]]) -> str:
    kinds = Counter(str(f.get("kind")) for f in faults)
    return ", ".join(f"{n} x {kind}" if n > 1 else kind for kind, n in sorted(kinds.items())) or "-"


def row(report: dict[str, Any]) -> str:
    counts = report.get("counts") or {}
    latency = report.get("latency_s") or {}
    oracles = report.get("oracles") or []
    held = sum(1 for o in oracles if o.get("ok"))
    failed = [str(o.get("oracle")) for o in oracles if not o.get("ok")]
    result = "pass" if report.get("passed") else ("FAIL: " + "; ".join(failed) if failed else "no verdict")
    cells = [
        str(report["test"]).replace("_", " "),
        str(report.get("tier", "-")),
        _faults(report.get("faults") or []),
        _count(counts.get("attempted")),
        _count(counts.get("lost")),
        _count(counts.get("duplicates_suppressed")),
        _count(counts.get("dead_lettered")),
        _count(counts.get("redelivered")),
        _latency(latency.get("baseline")),
        _latency(latency.get("faulted")),
        f"{held}/{len(oracles)}",
        result.replace("|", "/"),
    ]
    return "| " + " | ".join(cells) + " |"


def provenance(reports: list[dict[str, Any]]) -> str:
    """One line: the dates the reports were measured on and the commits they measured."""
    days = sorted({str(r.get("started_at", ""))[:10] for r in reports} - {""})
    commits: list[str] = []
    for r in reports:
        code = r.get("code") or {}
        label = (
            f"{code['commit']}{' (work tree changed)' if code.get('dirty') else ''}"
            if code.get("commit")
            else "unrecorded"
        )
        if label not in commits:
            commits.append(label)
    when = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}" if days else "unknown dates"
    return f"Measured {when}, commit {', '.join(commits)}."


def table(reports: list[dict[str, Any]]) -> str:
    if not reports:
        return "No reliability report yet: run `make test-chaos` (`make test-chaos-full` for the full tier)."
    return "\n".join([provenance(reports), "", *HEADER, *(row(r) for r in reports)])


def splice(readme: str, body: str, block: str = "reliability") -> str:
    """`readme` with the text between `block`'s markers replaced by `body`."""
    begin, end_marker = f"<!-- {block}:begin -->", f"<!-- {block}:end -->"
    start, end = readme.find(begin), readme.find(end_marker)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {begin} ... {end_marker} block")
    return readme[: start + len(begin)] + "\n" + body + "\n" + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=Path, default=BLOCKS["reliability"], help="the PR tier's reports")
    parser.add_argument(
        "--full-reports", type=Path, default=BLOCKS["reliability-full"], help="the full tier's reports"
    )
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if the README's table is stale")
    mode.add_argument("--print", action="store_true", help="print the table, change nothing")
    args = parser.parse_args(argv)

    bodies = {
        "reliability": table(load_reports(args.reports)),
        "reliability-full": table(load_reports(args.full_reports)),
    }
    if args.print:
        print("\n\n".join(bodies.values()))
        return 0
    current = args.readme.read_text()
    wanted = current
    for block, body in bodies.items():
        wanted = splice(wanted, body, block)
    if args.check:
        if wanted != current:
            print(f"{args.readme}: the reliability table is stale; run {SCRIPT_NAME}", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        args.readme.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
