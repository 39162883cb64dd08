"""Identifiers that may travel as NATS subject tokens.

A subject token must never carry `.`, `*`, `>` or whitespace: such an id would add tokens or
wildcards to a subject (`plans.evt.<user>.<plan>.<kind>`) and let one tenant read another's
events. Every id in a contract is therefore validated against a strict alphabet.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from pydantic import StringConstraints

TOKEN_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_TOKEN_RE = re.compile(TOKEN_PATTERN)

SafeId = Annotated[str, StringConstraints(pattern=TOKEN_PATTERN)]
"""An id that is safe to use as one subject token."""


class UnsafeTokenError(ValueError):
    """An id would have produced extra subject tokens or wildcards."""


def new_id() -> str:
    """A fresh random id (UUID4, hyphenated): safe as a subject token."""
    return str(uuid.uuid4())


def check_token(value: str) -> str:
    """Return `value` if it is one safe subject token, else raise UnsafeTokenError."""
    if not isinstance(value, str) or not _TOKEN_RE.fullmatch(value):
        raise UnsafeTokenError(f"not a safe subject token: {value!r}")
    return value


def stable_id(*parts: str) -> str:
    """A deterministic id from parts (UUID5): the same parts always give the same id.

    Used where a retried step must publish the *same* message id so JetStream's
    de-duplication window drops the copy (e.g. a graph node that runs twice after a crash).
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "tripmesh:" + "/".join(parts)))
