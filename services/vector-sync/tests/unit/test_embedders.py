"""Embedders: the hashing stand-in's contract, the embedder choice, and wordllama loading
strictly offline from its own wheel."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import pytest
from tripmesh_vector_sync.embedders import Embedder, HashingEmbedder
from tripmesh_vector_sync.settings import EmbedderKind, Settings


def test_hashing_embedder_is_deterministic_normalised_and_sized() -> None:
    embedder = HashingEmbedder(64)
    assert isinstance(embedder, Embedder)
    first, again, other, empty = embedder.embed(["Lisbon food", "lisbon FOOD", "Oslo hiking", "..."])
    assert first == again and first != other
    for vector in (first, other, empty):
        assert len(vector) == 64 and math.isclose(sum(v * v for v in vector), 1.0)
    assert embedder.name == "hashing-v1/64" and embedder.dim == 64


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, EmbedderKind.WORDLLAMA),
        ({"VECTOR_SYNC_EMBEDDING_MODEL": "openai/text-embedding-3-small"}, EmbedderKind.LITELLM),
        ({"VECTOR_SYNC_EMBEDDER": "hashing", "VECTOR_SYNC_EMBEDDING_MODEL": "x/y"}, EmbedderKind.HASHING),
    ],
)
def test_embedder_choice_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: EmbedderKind
) -> None:
    for key in ("VECTOR_SYNC_EMBEDDER", "VECTOR_SYNC_EMBEDDING_MODEL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Settings().resolved_embedder() is expected


def test_settings_take_qdrant_url_unprefixed_and_default_the_local_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QDRANT_URL", "http://qdrant:6333")
    monkeypatch.setenv("TRIPMESH_DATA_DIR", "/srv/tripmesh")
    monkeypatch.setenv("VECTOR_SYNC_HTTP_PORT", "9123")
    settings = Settings()
    assert settings.qdrant_url == "http://qdrant:6333" and settings.http_port == 9123
    assert str(settings.resolved_qdrant_path()) == "/srv/tripmesh/qdrant"


def test_wordllama_loads_from_its_wheel_with_the_network_cut_off() -> None:
    """HF_HUB_OFFLINE=1 and every socket connect refused: the model must still load, from
    the files its wheel ships, and embed."""
    script = textwrap.dedent("""
        import socket
        def refuse(*args, **kwargs):
            raise OSError("network disabled in this test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from tripmesh_vector_sync.embedders import WordLlamaEmbedder
        embedder = WordLlamaEmbedder()
        [vector] = embedder.embed(["Lisbon and Porto food trip"])
        print(embedder.name, embedder.dim, len(vector))
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    name, dim, size = done.stdout.split()
    assert name.startswith("wordllama-") and name.endswith("/l2_supercat/256")
    assert dim == size == "256"
