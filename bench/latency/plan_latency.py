"""POST -> terminal SSE event for single plans, one at a time, over the public API.

Starts the stack exactly as `make up` does (tripmesh_devstack.Stack) in a temp dir, signs a
user up, then submits N+1 plans sequentially: the first is reported apart (cold: first
LLM/tool calls in the runner), the rest as warm. A measurement, never a test assertion.

    uv run python bench/latency/plan_latency.py 10
"""

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "e2e"))
import httpx
from client import User, plan_body
from tripmesh_devstack.services import LOAD_TEST_LIMITS, default_services
from tripmesh_devstack.supervisor import Stack


async def main(n: int) -> None:
    d = Path(tempfile.mkdtemp(prefix="lat-"))
    console = (d / "console.log").open("w")
    s = Stack(
        d / "data",
        default_services(free_ports=True),
        console=console,
        env={"LOG_FORMAT": "json", **LOAD_TEST_LIMITS},
    )
    t0 = time.monotonic()
    s.start()
    print("stack ready in", round(time.monotonic() - t0, 1), "s")
    try:
        async with httpx.AsyncClient(base_url=s.gateway_url, timeout=60) as http:
            u = User(http, "lat@example.com", "lat", "correct-horse-battery-9")
            await u.signup_and_login()
            times = []
            for i in range(n + 1):
                st = time.monotonic()
                r = await u.post("/api/v1/plans", json=plan_body(title=f"trip {i}"))
                ev = await u.events(r.json()["id"])
                times.append(time.monotonic() - st)
                print(i, ev[-1].event, round(times[-1], 3))
            warm = times[1:]
            print(
                json.dumps(
                    {
                        "first": round(times[0], 3),
                        "warm_p50": round(statistics.median(warm), 3),
                        "warm_max": round(max(warm), 3),
                    }
                )
            )
    finally:
        s.stop()


asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
