"""The NATS auth callout's issuer key (issue #8): an account nkey generated once into
`<data>/nats/callout-issuer.seed` (mode 0600). The server's `auth_callout.issuer` is its
public key; the gateway gets the seed (GATEWAY_NATS_CALLOUT_ISSUER_SEED) to sign its answers."""

from __future__ import annotations

import os
from pathlib import Path

import nkeys


def load_or_create_issuer_seed(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_ACCOUNT).decode()
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(seed + "\n")
        os.replace(tmp, path)
    return path.read_text().strip()


def issuer_public_key(seed: str) -> str:
    return str(nkeys.from_seed(seed.encode()).public_key.decode())
