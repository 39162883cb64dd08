"""Generated passwords kept under the data directory (mode 0600), stable across restarts."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path


def load_or_create_passwords(path: Path, names: Iterable[str]) -> dict[str, str]:
    """`{name: password}` from the JSON file at `path`; names missing from it get a new
    random password, written back atomically with mode 0600."""
    known: dict[str, str] = {}
    if path.exists():
        known = {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
    wanted = list(names)
    missing = [name for name in wanted if name not in known]
    if missing:
        known.update({name: secrets.token_urlsafe(24) for name in missing})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(known, out, indent=2, sort_keys=True)
        os.replace(tmp, path)
    return {name: known[name] for name in wanted}
