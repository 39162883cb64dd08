"""Where the JWT signing key comes from: GATEWAY_JWT_SECRET, or a key generated once into
`<TRIPMESH_DATA_DIR>/gateway/jwt.key` (mode 0600). Never a key written in the code."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from tripmesh_kit.logging import get_logger

from tripmesh_gateway.settings import Environment, Settings

log = get_logger(__name__)

MIN_SECRET_BYTES = 32
"""RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits)."""
PLACEHOLDERS = frozenset(
    {"changeme", "change-me", "change_me", "changethis", "secret", "jwt-secret", "jwt_secret",
     "jwtsecret", "secret-key", "secret_key", "your-secret-key", "supersecret", "password",
     "default", "insecure", "test", "dev", "development", "example", "xxx"}
)  # fmt: skip


class InsecureSecretError(RuntimeError):
    """The configured JWT secret is a placeholder or too short for production."""


def weakness(secret: str) -> str | None:
    """Why `secret` must not sign production tokens, or None when it is acceptable."""
    lowered = secret.strip().lower()
    if lowered in PLACEHOLDERS or "changeme" in lowered.replace("-", "").replace("_", ""):
        return "is a placeholder"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    return None


def key_path(data_dir: Path) -> Path:
    return data_dir / "gateway" / "jwt.key"


def _read_or_create(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Write to a private temp file, then hard-link into place: link() fails if another
        # replica got there first, and nobody ever reads a half-written key.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(64) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
                log.info("jwt_key_generated", path=str(path))
        finally:
            tmp.unlink(missing_ok=True)
    if path.stat().st_mode & 0o077:
        log.warning("jwt_key_permissions_fixed", path=str(path))
        path.chmod(0o600)
    key = path.read_text().strip()
    if weakness(key):
        raise InsecureSecretError(f"{path}: the stored JWT key {weakness(key)}")
    return key.encode()


def load_signing_key(settings: Settings) -> bytes:
    """The HS256 key. A weak configured secret is refused outside development."""
    if settings.jwt_secret is None:
        return _read_or_create(key_path(settings.data_dir))
    secret = settings.jwt_secret.get_secret_value()
    problem = weakness(secret)
    if problem:
        if settings.environment is not Environment.DEVELOPMENT:
            raise InsecureSecretError(
                f"GATEWAY_JWT_SECRET {problem}; set a random value of {MIN_SECRET_BYTES}+ bytes "
                "or unset it to generate one into the data directory"
            )
        log.warning("jwt_secret_weak", reason=problem, environment=settings.environment.value)
    return secret.encode()
