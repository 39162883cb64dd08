"""The committed JSON Schemas must match the models: a contract change is always reviewed."""

import json
from pathlib import Path

from tripmesh_contracts.schema import MESSAGE_TYPES, schemas

SNAPSHOT = Path(__file__).resolve().parents[1] / "schemas"


def test_snapshot_matches_models() -> None:
    current = schemas()
    on_disk = {p.name: json.loads(p.read_text()) for p in SNAPSHOT.glob("*.json")}
    assert set(on_disk) == set(current), "run: uv run python -m tripmesh_contracts.schema"
    for name, schema in current.items():
        assert on_disk[name] == json.loads(json.dumps(schema)), (
            f"{name} changed: regenerate with `uv run python -m tripmesh_contracts.schema` "
            "and, if it breaks consumers, add a new vN type instead"
        )


def test_every_message_type_is_versioned_and_unique() -> None:
    types = [m.TYPE for m in MESSAGE_TYPES]
    assert len(types) == len(set(types))
    assert all(t.rsplit(".", 1)[-1].startswith("v") for t in types)


def test_unknown_fields_are_tolerated() -> None:
    from tripmesh_contracts import PlanCancel

    raw = PlanCancel(user_id="u1", plan_id="p1").model_dump(mode="json")
    raw["added_in_a_later_version"] = {"x": 1}
    assert PlanCancel.model_validate(raw).plan_id == "p1"
