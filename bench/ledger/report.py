"""reports/bench/ledger-replay.json and .md from one run of bench/ledger/replay.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PHASES = (("fresh", "fresh (every row new)"), ("duplicates", "duplicate replay (every row present)"))


def write_reports(result: dict[str, Any], stem: Path) -> tuple[Path, Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    md_path.write_text(markdown(result))
    return json_path, md_path


def _shape(r: dict[str, Any]) -> str:
    if r.get("shape", "scattered") == "scattered":
        return "scattered (each event a random plan at a random time: every event grows its own totals)"
    return f"stream (time-ordered, {r['active_plans']} plans in flight, a plan's calls together)"


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# cost-ledger replay: {r['events']:,} usage events ({r['when']})",
        "",
        f"Workload shape: {_shape(r)}.",
        "",
        f"`{r['command']}`",
        "",
        f"Machine: {r['machine']['cpus']} CPUs, {r['machine']['platform']}, Python {r['machine']['python']},"
        f" CPU calibration {r['machine'].get('cpu_calibration_ms', '-')} ms (bench/calibration.py)."
        f" NATS {r['servers']['nats']}; Postgres {r['servers']['postgres']}.",
        f"Consumer: `python -m tripmesh_cost_ledger` x {r.get('replicas', 1)},"
        f" batch size {r['batch_size']},"
        f" window {r['window_seconds']} s, {r.get('ingest_concurrency', 1)} batches at once."
        f" Publishing (not measured): {r['publish']['seconds']} s"
        f" ({r['publish']['events_per_s']:,} events/s, async acks; embedded NATS loads without"
        " `sync_interval: always`, then restarts with it for the measured phases).",
        "",
        "| phase | events | seconds | events/s | CPU s consumer | CPU s Postgres | CPU s NATS"
        " | CPU s machine | rows added | duplicates | ledger check |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, label in PHASES:
        p = r[key]
        cpu = p["cpu_seconds"]
        counters = p["service_counters"]
        check = p["check"]
        lines.append(
            f"| {label} | {p['events']:,} | {p['seconds']} | **{p['events_per_s']:,}** | {cpu['consumer']}"
            f" | {cpu['postgres']} | {cpu['nats']} | {cpu['machine_busy']}"
            f" | {int(counters.get('ingested', 0)):,} | {int(counters.get('duplicates', 0)):,}"
            f" | {check['rows']:,} rows, ${check['total_cost_usd']}, {check['user_days']:,} user-days,"
            f" {check['plans']:,} plans: exact |"
        )
    lines += [
        "",
        "Timed from the durable's first delivery to every message acked (acks follow the commit)."
        " The ledger check (after each phase) is an assertion: row count, and every per-user-day and"
        " per-plan total equal to the Decimal sum of its events, to 8 places. 'CPU s machine' is every"
        " process on this shared machine over the window (2 cores = 2 CPU s per second).",
    ]
    for key, label in PHASES:
        profile = r[key].get("py_spy")
        if not profile or "inclusive" not in profile:
            continue
        lines += ["", f"## py-spy, {label} ({profile['samples']} samples, `--gil`)", ""]
        lines += ["| inclusive | function |", "|---:|---|"]
        # the frames every sample shares (runpy, uvicorn, the event loop) say nothing
        lines += [f"| {share:.0%} | `{fn}` |" for fn, share in profile["inclusive"].items() if share < 0.9]
        lines += ["", "| self | function |", "|---:|---|"]
        lines += [f"| {share:.0%} | `{fn}` |" for fn, share in list(profile["self"].items())[:15]]
    return "\n".join(lines) + "\n"
