"""The report: JSON (everything) and a Markdown table, under reports/bench/stack-<ts>.*"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
from tripmesh_devstack.nats import nats_server_binary

from bench.calibration import cpu_calibration_ms

ROOT = Path(__file__).resolve().parents[2]


def _output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=30)
        return (done.stdout or done.stderr).strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> dict[str, Any]:
    """The machine and the versions, recorded with every report."""
    dirty = _output(["git", "status", "--porcelain", "--untracked-files=no"])
    try:
        nats = _output([nats_server_binary(), "--version"])
    except Exception:  # a missing binary is recorded, not fatal
        nats = "unknown"
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
            "cpu_calibration_ms": cpu_calibration_ms(),
            "shared": "yes: other work runs on this machine; machine_busy_fraction shows how much",
        },
        "versions": {
            "git_commit": _output(["git", "rev-parse", "--short", "HEAD"]),
            "git_dirty": dirty not in ("", "unknown"),
            "python": platform.python_version(),
            "nats_server": nats,
        },
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _not_completed(r: dict[str, Any]) -> str:
    """Plans that ended other than `completed` (partial, failed, cancelled), by status: they
    count as plans (they reached a terminal event), but a fast failure is not throughput."""
    others = {k: v for k, v in r["statuses"].items() if k != "completed"}
    return ", ".join(f"{v} {k}" for k, v in sorted(others.items())) or "0"


def _point_key(r: dict[str, Any]) -> tuple[float, str, float]:
    load = r["clients"] if r["mode"] == "closed" else r["offered_plans_per_second"]
    return (r["llm_latency_ms"], r["mode"], float(load))


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, 2)


def ratios(
    results: list[dict[str, Any]], base: str = "tripmesh", control: str = "control"
) -> list[dict[str, Any]]:
    """The headline (issue #13): each point measured for both, as tripmesh / control.
    plans/s above 1 is tripmesh ahead; latency and CPU per plan above 1 is tripmesh behind."""
    by_system: dict[str, dict[tuple[float, str, float], dict[str, Any]]] = {}
    for r in results:
        by_system.setdefault(r["system"], {})[_point_key(r)] = r
    rows = []
    for key, t in by_system.get(base, {}).items():
        c = by_system.get(control, {}).get(key)
        if c is None:
            continue
        rows.append(
            {
                "llm_latency_ms": key[0],
                "mode": key[1],
                "load": key[2],
                "plans_per_second": [t["plans_per_second"], c["plans_per_second"]],
                "p50_seconds": [t["latency_seconds"]["p50"], c["latency_seconds"]["p50"]],
                "p99_seconds": [t["latency_seconds"]["p99"], c["latency_seconds"]["p99"]],
                "cpu_seconds_per_plan": [t["stack_cpu_seconds_per_plan"], c["stack_cpu_seconds_per_plan"]],
                "ratio": {
                    "plans_per_second": _ratio(t["plans_per_second"], c["plans_per_second"]),
                    "p50": _ratio(t["latency_seconds"]["p50"], c["latency_seconds"]["p50"]),
                    "p99": _ratio(t["latency_seconds"]["p99"], c["latency_seconds"]["p99"]),
                    "cpu_seconds_per_plan": _ratio(
                        t["stack_cpu_seconds_per_plan"], c["stack_cpu_seconds_per_plan"]
                    ),
                },
            }
        )
    return rows


def _pair(values: list[float | None], ratio: float | None, fmt: str, scale: float = 1.0) -> str:
    text = ["-" if v is None else format(v * scale, fmt) for v in values]
    return f"{text[0]} / {text[1]} = **{'-' if ratio is None else f'{ratio:.2f}'}**"


def ratio_lines(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = [
        "Headline: tripmesh / control, each point measured for both in this run (the control: the same",
        "planner graph and agents in one process, bench/stack/control). plans/s above 1 = tripmesh ahead;",
        "latency and CPU per plan above 1 = tripmesh behind.",
        "",
        "| LLM ms | load | plans/s | p50 ms | p99 ms | CPU s/plan |",
        "|---:|---|---|---|---|---|",
    ]
    for row in rows:
        load = f"{row['load']:g} clients" if row["mode"] == "closed" else f"open {row['load']:g}/s"
        ratio = row["ratio"]
        lines.append(
            f"| {row['llm_latency_ms']:g} | {load}"
            f" | {_pair(row['plans_per_second'], ratio['plans_per_second'], '.2f')}"
            f" | {_pair(row['p50_seconds'], ratio['p50'], '.0f', 1000)}"
            f" | {_pair(row['p99_seconds'], ratio['p99'], '.0f', 1000)}"
            f" | {_pair(row['cpu_seconds_per_plan'], ratio['cpu_seconds_per_plan'], '.3f')} |"
        )
    return [*lines, ""]


def markdown(report: dict[str, Any]) -> str:
    env, setup = report["environment"], report["setup"]
    lines = [
        f"# make bench: the stack end to end ({report['recorded_at']})",
        "",
        f"`{report['command']}` at {env['versions']['git_commit']}"
        f"{' (uncommitted changes)' if env['versions']['git_dirty'] else ''}; {env['machine']['cpus']} CPUs,"
        f" {env['machine']['memory_gib']} GiB, Python {env['versions']['python']},"
        f" {env['versions']['nats_server']};"
        f" load average before {env['machine']['loadavg_before']} (shared machine);"
        f" CPU calibration {env['machine'].get('cpu_calibration_ms', '-')} ms (bench/calibration.py:"
        " compare runs only at similar figures).",
        f"LLM: OpenAI-compatible stub through litellm, cache off; warm-up {setup['warmup_seconds']:g} s,"
        f" window {setup['window_seconds']:g} s per point. Latency = POST /plans -> terminal SSE event.",
        "",
        *ratio_lines(report.get("ratios", [])),
    ]
    for system, times in report["startup_seconds"].items():
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
        rest_mb = sum(report["pss_at_rest_mb"].get(system, {}).values())
        lines.append(
            f"- `{system}` start to every /readyz 200: {parts}; memory at rest {rest_mb:.0f} MB (PSS)"
        )
    lines += [
        "",
        "| system | LLM ms | load | plans | not completed | plans/s | p50 ms | p95 ms | p99 ms | errors"
        " | stack CPU s/plan | stack peak PSS MB | machine busy |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lat = r["latency_seconds"]
        offered = r["offered_plans_per_second"]
        load = f"{r['clients']} clients" if r["mode"] == "closed" else f"open {offered:g}/s"
        per_plan = r["stack_cpu_seconds_per_plan"]
        lines.append(
            f"| {r['system']} | {r['llm_latency_ms']:g} | {load} | {r['plans']} | {_not_completed(r)}"
            f" | {r['plans_per_second']:.2f}"
            f" | {_ms(lat['p50'])} | {_ms(lat['p95'])} | {_ms(lat['p99'])} | {r['errors']}"
            f" | {'-' if per_plan is None else f'{per_plan:.3f}'} | {r['stack_peak_pss_mb']:.0f}"
            f" | {r['machine_busy_fraction']:.0%} |"
        )
    names = sorted({k for r in report["results"] for k in r["cpu_seconds_per_plan"]})
    lines += ["", "CPU seconds per plan, by process (stack peak PSS = sum of per-process peaks):", ""]
    lines.append("| process | " + " | ".join(_short(r) for r in report["results"]) + " |")
    lines.append("|---|" + "---:|" * len(report["results"]))
    for name in names:
        cells = [r["cpu_seconds_per_plan"].get(name) for r in report["results"]]
        lines.append(f"| {name} | " + " | ".join("-" if c is None else f"{c:.3f}" for c in cells) + " |")
    lines += [
        "",
        "Peak RSS MB (PSS MB), by process (Postgres: its backends' sum; RSS counts shared buffers",
        "",
    ]
    lines[-2] += " in each, PSS splits them):"
    lines.append("| process | " + " | ".join(_short(r) for r in report["results"]) + " |")
    lines.append("|---|" + "---:|" * len(report["results"]))
    for name in sorted({k for r in report["results"] for k in r["peak_rss_mb"]}):
        cells = [(r["peak_rss_mb"].get(name), r["peak_pss_mb"].get(name)) for r in report["results"]]
        text = ["-" if rss is None else f"{rss:.0f} ({pss or 0:.0f})" for rss, pss in cells]
        lines.append(f"| {name} | " + " | ".join(text) + " |")
    lines += [
        "",
        "machine busy = CPU used by every process on the machine in the window, of all cores: near 100 %",
        "while the stack's own share is lower means other work took the CPU and the figures understate it.",
    ]
    return "\n".join(lines) + "\n"


def _short(r: dict[str, Any]) -> str:
    load = f"{r['clients']}c" if r["mode"] == "closed" else f"{r['offered_plans_per_second']:g}/s"
    return f"{r['system']} {r['llm_latency_ms']:g} ms {load}"


def write(report: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"stack-{report['recorded_at']}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    path.with_suffix(".md").write_text(markdown(report))
    return path


def command_line(argv: list[str] | None) -> str:
    return "uv run python -m bench.stack " + " ".join(sys.argv[1:] if argv is None else argv)
