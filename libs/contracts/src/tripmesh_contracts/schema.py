"""JSON Schema for every bus message, generated from the models (never written by hand).

`python -m tripmesh_contracts.schema <dir>` writes one file per message type; the committed
copy in `libs/contracts/schemas/` is snapshot-tested so a contract change is always visible
in review (a breaking change must be a new `vN` type).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tripmesh_contracts import messages, rpc
from tripmesh_contracts.envelope import Envelope

MESSAGE_TYPES: tuple[type[Envelope], ...] = (
    messages.PlanCreate,
    messages.PlanRevise,
    messages.PlanDecide,
    messages.PlanCancel,
    messages.PlanDelete,
    messages.AgentJob,
    messages.AgentResult,
    messages.PlanEvent,
    messages.PlanChanged,
    messages.UsageEvent,
    messages.CostAlert,
)

RPC_TYPES: tuple[type[BaseModel], ...] = tuple(
    obj
    for obj in vars(rpc).values()
    if isinstance(obj, type) and issubclass(obj, rpc.RpcModel) and obj is not rpc.RpcModel
)


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, for every message and rpc model."""
    out: dict[str, dict[str, Any]] = {}
    for model in MESSAGE_TYPES:
        out[f"{model.TYPE}.json"] = model.model_json_schema()
    for rmodel in RPC_TYPES:
        out[f"rpc.{rmodel.__name__}.json"] = rmodel.model_json_schema()
    return out


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in sorted(schemas().items()):
        path = directory / name
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write(Path(sys.argv[1] if len(sys.argv) > 1 else "libs/contracts/schemas")):
        print(p)
