"""overlays/oracle-a1 fits one Ampere A1 node (4 OCPU, 24 GB) with headroom, at the runner
pools' *maximum* replicas: each pool is counted at its ScaledObject's maxReplicaCount (or
HPA maxReplicas), every other workload at its `replicas`, the provision Job once (it runs at
install time, beside everything else). The sums are computed from the rendered manifest and
must equal the table in deploy/k3s/README.md.

Headroom: requests (what the scheduler reserves) stay under 75 % of the node's CPU and
memory, leaving k3s itself, Traefik, CoreDNS, metrics-server, local-path and KEDA the rest;
memory limits stay under 20 GiB (memory is not overcommitted: a container at its limit must
not push the node into OOM); CPU limits are burst caps (CPU is throttled, not killed), so
they may overcommit, but no single container may ask for more than the node."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
README = REPO / "deploy" / "k3s" / "README.md"
NODE_CPU = Decimal(4)
NODE_MEMORY_GIB = Decimal(24)
REQUEST_SHARE = Decimal("0.75")
MEMORY_LIMIT_GIB = Decimal(20)
Obj = dict[str, Any]

_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9, "": 1}


def cpu(quantity: str | int) -> Decimal:
    text = str(quantity)
    return Decimal(text[:-1]) / 1000 if text.endswith("m") else Decimal(text)


def memory_gib(quantity: str | int) -> Decimal:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]i?|k)?", str(quantity)).groups()  # type: ignore[union-attr]
    return Decimal(number) * _UNITS[unit or ""] / 2**30


def max_replicas(objects: list[Obj]) -> dict[tuple[str, str], int]:
    """(kind, name) -> the most pods the workload can have."""
    autoscaled = {
        (o["spec"]["scaleTargetRef"]["kind"], o["spec"]["scaleTargetRef"]["name"]): int(
            o["spec"].get("maxReplicaCount", o["spec"].get("maxReplicas", 0))
        )
        for o in objects
        if o["kind"] in ("ScaledObject", "HorizontalPodAutoscaler")
    }
    counts = {}
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet", "Job"):
            key = (o["kind"], o["metadata"]["name"])
            own = o["spec"].get("parallelism", 1) if o["kind"] == "Job" else o["spec"].get("replicas", 1)
            counts[key] = autoscaled.get(key, own)
    return counts


def sizing_rows(objects: list[Obj]) -> list[tuple[str, int, Decimal, Decimal, Decimal, Decimal]]:
    """(workload, pods, cpu request, memory request GiB, cpu limit, memory limit GiB) per pod."""
    rows = []
    for (kind, name), pods in sorted(max_replicas(objects).items(), key=lambda kv: kv[0][1]):
        [workload] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
        containers = workload["spec"]["template"]["spec"]["containers"]
        req = [c["resources"]["requests"] for c in containers]
        lim = [c["resources"]["limits"] for c in containers]
        rows.append(
            (
                name,
                pods,
                sum((cpu(r["cpu"]) for r in req), Decimal(0)),
                sum((memory_gib(r["memory"]) for r in req), Decimal(0)),
                sum((cpu(r["cpu"]) for r in lim), Decimal(0)),
                sum((memory_gib(r["memory"]) for r in lim), Decimal(0)),
            )
        )
    return rows


def totals(objects: list[Obj]) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    rows = sizing_rows(objects)
    return (
        sum((r[1] * r[2] for r in rows), Decimal(0)),
        sum((r[1] * r[3] for r in rows), Decimal(0)),
        sum((r[1] * r[4] for r in rows), Decimal(0)),
        sum((r[1] * r[5] for r in rows), Decimal(0)),
    )


def test_quantities_parse() -> None:
    assert cpu("250m") == Decimal("0.25") and cpu("1") == 1 and cpu(2) == 2
    assert memory_gib("512Mi") == Decimal("0.5") and memory_gib("3Gi") == 3
    assert memory_gib("1G") == Decimal(10**9) / 2**30


def test_autoscaled_pools_count_at_their_maximum() -> None:
    objects: list[Obj] = [
        {"kind": "Deployment", "metadata": {"name": "pool"}, "spec": {}},
        {"kind": "Deployment", "metadata": {"name": "fixed"}, "spec": {"replicas": 2}},
        {
            "kind": "ScaledObject",
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "pool"}, "maxReplicaCount": 7},
        },
    ]
    assert max_replicas(objects) == {("Deployment", "pool"): 7, ("Deployment", "fixed"): 2}


def test_oracle_a1_fits_one_node_with_headroom(render_k3s: Callable[[str], list[Obj]]) -> None:
    objects = render_k3s("overlays/oracle-a1")
    cpu_requests, memory_requests, _, memory_limits = totals(objects)
    assert cpu_requests <= NODE_CPU * REQUEST_SHARE, cpu_requests
    assert memory_requests <= NODE_MEMORY_GIB * REQUEST_SHARE, memory_requests
    assert memory_limits <= MEMORY_LIMIT_GIB, memory_limits
    for name, _, _, _, cpu_limit, memory_limit in sizing_rows(objects):
        assert cpu_limit <= NODE_CPU and memory_limit <= NODE_MEMORY_GIB, name
    # the runner pools really are counted at their KEDA maximum
    pods = {row[0]: row[1] for row in sizing_rows(objects)}
    for scaled in (o for o in objects if o["kind"] == "ScaledObject"):
        assert pods[scaled["spec"]["scaleTargetRef"]["name"]] == scaled["spec"]["maxReplicaCount"]


def test_readme_table_is_the_rendered_sizing(render_k3s: Callable[[str], list[Obj]]) -> None:
    objects = render_k3s("overlays/oracle-a1")
    table = README.read_text().split("<!-- oracle-a1 sizing -->")[1]
    rows = dict(re.findall(r"^\| `([\w-]+)` \| (.+) \|$", table, re.M))
    for name, pods, cpu_req, mem_req, cpu_lim, mem_lim in sizing_rows(objects):
        cells = [str(pods), f"{cpu_req * 1000:.0f}m", f"{mem_req * 1024:.0f}Mi"]
        cells += [f"{cpu_lim * 1000:.0f}m", f"{mem_lim * 1024:.0f}Mi"]
        assert rows[name] == " | ".join(cells), name
    cpu_requests, memory_requests, cpu_limits, memory_limits = totals(objects)
    expected = (
        f"| **total** | | **{cpu_requests * 1000:.0f}m** | **{memory_requests * 1024:.0f}Mi** |"
        f" **{cpu_limits * 1000:.0f}m** | **{memory_limits * 1024:.0f}Mi** |"
    )
    assert expected in table, expected
