"""vector-sync settings: `VECTOR_SYNC_*`, plus the shared unprefixed names (ARCHITECTURE.md §9).

Qdrant: `QDRANT_URL` (a server) when set, else embedded local storage at
`VECTOR_SYNC_QDRANT_PATH` (default `<TRIPMESH_DATA_DIR>/qdrant`).

Embedder: `VECTOR_SYNC_EMBEDDER` = `wordllama` (default, offline) | `litellm` | `hashing`
(unit tests only). Setting `VECTOR_SYNC_EMBEDDING_MODEL` (e.g.
`openai/text-embedding-3-small`) selects litellm without naming it twice.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from tripmesh_kit.settings import ServiceSettings, shared


class EmbedderKind(StrEnum):
    WORDLLAMA = "wordllama"
    LITELLM = "litellm"
    MINILM = "minilm"
    HASHING = "hashing"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VECTOR_SYNC_", extra="ignore", populate_by_name=True)

    service_name: str = "vector-sync"
    http_port: int = 8085

    qdrant_url: str | None = Field(default=None, validation_alias=shared("QDRANT_URL"))
    qdrant_api_key: SecretStr | None = Field(
        default=None, validation_alias=shared("QDRANT_API_KEY", "VECTOR_SYNC_QDRANT_API_KEY")
    )
    qdrant_path: Path | None = None
    """Local storage folder when no QDRANT_URL; default `<data_dir>/qdrant`."""
    qdrant_timeout_seconds: int = 10
    collection_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9_-]{0,40}$")
    """Prepended to every collection name: several deployments (or tests) on one server."""

    embedder: EmbedderKind | None = None
    """None: litellm when `embedding_model` is set, else wordllama."""
    embedding_model: str | None = None
    """A litellm embedding model string, e.g. `openai/text-embedding-3-small`."""
    embedding_api_base: str | None = None
    embedding_dimensions: int | None = Field(default=None, ge=1, le=8192)
    """Ask the provider for this many dimensions (models that support it)."""
    embedding_timeout_seconds: float = 30.0
    wordllama_config: str = "l2_supercat"
    wordllama_dim: Literal[64, 128, 256] = 256
    """The wheel ships 256-d weights; 64 or 128 truncate them (Matryoshka)."""
    minilm_max_seq_length: int = Field(default=256, ge=8, le=512)
    """Tokens per text for the minilm embedder (the model was trained with 256)."""
    hashing_dim: int = Field(default=256, ge=8, le=4096)

    reindex_on_mismatch: bool = False
    """Start-up with collections built by another embedder: False refuses to start (run
    `python -m tripmesh_vector_sync reindex`); True rebuilds them from PLAN_CHANGES first."""
    fetch_timeout_seconds: float = Field(default=1.0, gt=0, le=30)
    """How long one pull waits for a plan change (a change is handled as soon as it comes)."""
    reindex_batch_size: int = Field(default=64, ge=1, le=1024)
    """Plan changes a rebuild embeds in one call."""
    rpc_workers: int = Field(default=4, ge=1, le=64)

    def resolved_embedder(self) -> EmbedderKind:
        if self.embedder is not None:
            return self.embedder
        return EmbedderKind.LITELLM if self.embedding_model else EmbedderKind.WORDLLAMA

    def resolved_qdrant_path(self) -> Path:
        return self.qdrant_path or self.data_dir / "qdrant"
