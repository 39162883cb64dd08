"""Test helper: a Stack with embedded NATS + Postgres and a dummy service (with a grandchild),
started the way `make up` starts it; prints the pids as JSON, then waits to be killed."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tripmesh_devstack import ServiceSpec, Stack

dummy = ServiceSpec(
    "dummy",
    "dummy",
    "DUMMY_HTTP_PORT",
    env={"DUMMY_CHILD": "1"},
    argv=[sys.executable, str(Path(__file__).with_name("dummy_service.py"))],
)
stack = Stack(sys.argv[1], [dummy], console=sys.stderr)
stack.start()
assert stack.nats and stack.postgres
print(
    json.dumps({"nats": stack.nats.pid, "postgres": stack.postgres.pid, "dummy": stack.pid("dummy")}),
    flush=True,
)
while True:
    time.sleep(60)
