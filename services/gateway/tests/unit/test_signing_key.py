"""Where the JWT key comes from: never the code; placeholders refused outside development."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from tripmesh_gateway.settings import Environment, Settings
from tripmesh_gateway.signing_key import InsecureSecretError, key_path, load_signing_key, weakness


def settings(tmp_path: Path, **fields: object) -> Settings:
    return Settings(data_dir=tmp_path, database_url="postgresql://unused", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "secret", ["changeme", "secret", "CHANGE_ME", "please-changeme-now", "short-but-random"]
)
def test_placeholders_and_short_secrets_are_weak(secret: str) -> None:
    assert weakness(secret) is not None


def test_a_long_random_secret_is_fine() -> None:
    assert weakness("q8Zr2J7vYwP0mKx4T1nB6cL9sD3fG5hA") is None


@pytest.mark.parametrize("secret", ["changeme", "secret"])
def test_production_refuses_a_placeholder(tmp_path: Path, secret: str) -> None:
    with pytest.raises(InsecureSecretError):
        load_signing_key(settings(tmp_path, jwt_secret=secret, environment=Environment.PRODUCTION))


def test_development_accepts_a_placeholder_with_a_warning(tmp_path: Path) -> None:
    assert load_signing_key(settings(tmp_path, jwt_secret="changeme")) == b"changeme"


def test_configured_secret_is_used(tmp_path: Path) -> None:
    secret = "q8Zr2J7vYwP0mKx4T1nB6cL9sD3fG5hA"
    key = load_signing_key(settings(tmp_path, jwt_secret=secret, environment=Environment.PRODUCTION))
    assert key == secret.encode()
    assert not key_path(tmp_path).exists()


def test_without_a_secret_one_is_generated_once_private(tmp_path: Path) -> None:
    first = load_signing_key(settings(tmp_path, environment=Environment.PRODUCTION))
    path = key_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 64
    assert load_signing_key(settings(tmp_path)) == first  # reused, not regenerated
    assert [p.name for p in path.parent.iterdir()] == ["jwt.key"]  # no temp files left


def test_a_readable_key_file_is_made_private(tmp_path: Path) -> None:
    load_signing_key(settings(tmp_path))
    key_path(tmp_path).chmod(0o644)
    load_signing_key(settings(tmp_path))
    assert stat.S_IMODE(key_path(tmp_path).stat().st_mode) == 0o600
