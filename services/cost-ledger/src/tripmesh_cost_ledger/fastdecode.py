"""A fast path from a usage message's bytes to its `UsageRow`, with pydantic as the authority.

`decode_usage` (pydantic, `UsageEvent.model_validate_json`) plus `UsageRow.from_event` cost
~12.5 us per event, the largest piece of the ledger consumer's own CPU after the NATS client
(bench/ledger/replay.py --profile-seconds). Almost every message is the runner's canonical
JSON, so `row_from_json` handles exactly that shape: orjson parses it, and each field is
accepted only in its one canonical JSON form (ids matching the subject-token pattern, ints
that are ints, booleans that are booleans, money as a plain decimal string, an RFC 3339
timestamp with an offset, `type` present and `usage.llm.v1`). Anything else - a missing
field with a generated default, a number given as a string, a float cost, a naive
timestamp, bad UTF-8 - returns None, and the caller asks pydantic, which either accepts it
(lax forms) or raises (the message goes to the DLQ with pydantic's error). So the fast path
only ever accepts a subset of what pydantic accepts, and for that subset builds the same
row: tests/unit/test_fastdecode.py checks both properties with hypothesis.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from tripmesh_contracts import UsageEvent
from tripmesh_contracts.ids import TOKEN_PATTERN
from tripmesh_contracts.plans import AgentName

from tripmesh_cost_ledger.domain import UsageRow, as_utc, money

_TOKEN = re.compile(TOKEN_PATTERN).fullmatch
_DECIMAL = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,20})?").fullmatch
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
).fullmatch
_AGENTS = frozenset(a.value for a in AgentName)
_REQUIRED_IDS = ("id", "user_id", "correlation_id")
_OPTIONAL_IDS = ("plan_id", "job_id", "run_id", "reservation_id")


class _NotCanonical(Exception):
    """The message is not in the canonical shape: pydantic decides."""


def row_from_json(data: bytes) -> UsageRow | None:
    """The row for a canonical usage message; None when pydantic must decide."""
    try:
        doc = orjson.loads(data)
        if type(doc) is not dict or doc.get("type") != UsageEvent.TYPE:
            return None
        return _row(doc)
    except (_NotCanonical, orjson.JSONDecodeError, ValueError, ArithmeticError):
        return None


def _row(d: dict[str, Any]) -> UsageRow:
    for key in _REQUIRED_IDS:
        if not _is_token(d.get(key)):
            raise _NotCanonical(key)
    for key in _OPTIONAL_IDS:
        value = d.get(key)
        if value is not None and not _is_token(value):
            raise _NotCanonical(key)
    agent = d.get("agent")
    if agent is not None and (type(agent) is not str or agent not in _AGENTS):
        raise _NotCanonical("agent")
    model, provider, error = d.get("model"), d.get("provider"), d.get("error")
    if type(model) is not str or type(provider) is not str or (error is not None and type(error) is not str):
        raise _NotCanonical("model/provider/error")
    version = d.get("version")
    if version is not None and type(version) is not int:
        raise _NotCanonical("version")
    return UsageRow(
        d["id"],
        d["user_id"],
        d.get("plan_id"),
        d.get("job_id"),
        d.get("run_id"),
        version,
        agent,
        model,
        provider,
        _count(d, "prompt_tokens", 0, 0),
        _count(d, "completion_tokens", 0, 0),
        money(_cost(d.get("cost_usd", "0"))),
        _count(d, "latency_ms", 0, 0),
        _count(d, "attempt", 1, 1),
        _flag(d, "cache_hit", False),
        _flag(d, "success", True),
        error,
        d.get("reservation_id"),
        d["correlation_id"],
        _flag(d, "estimated", False),
        _timestamp(d.get("occurred_at")),
    )


def _is_token(value: object) -> bool:
    return type(value) is str and _TOKEN(value) is not None


def _count(d: dict[str, Any], key: str, default: int, minimum: int) -> int:
    value = d.get(key, default)
    if type(value) is not int or value < minimum:
        raise _NotCanonical(key)
    return value


def _flag(d: dict[str, Any], key: str, default: bool) -> bool:
    value = d.get(key, default)
    if type(value) is not bool:
        raise _NotCanonical(key)
    return value


def _cost(value: object) -> Decimal:
    if type(value) is str and _DECIMAL(value):
        return Decimal(value)
    if type(value) is int and value >= 0:
        return Decimal(value)
    raise _NotCanonical("cost_usd")


def _timestamp(value: object) -> datetime:
    if type(value) is not str or not _RFC3339(value):
        raise _NotCanonical("occurred_at")
    return as_utc(datetime.fromisoformat(value))
