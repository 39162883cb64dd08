"""The cache every replica shares: a JetStream key-value bucket.

Identical LLM requests and identical tool lookups within the TTL are answered from here
(llm/caching.py, tools/registry.py). A KV bucket fits: it lives on the bus every replica
already talks to, entries expire by the bucket's `max_age` (the TTL), and direct gets are
served without a consumer.

A cache must never fail a job: an error reading or writing the bucket is a miss (logged and
counted), and the job goes on without it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any, Protocol

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue
from prometheus_client import Counter
from tripmesh_kit.logging import get_logger

log = get_logger(__name__)

CACHE_LOOKUPS = Counter(
    "tripmesh_agent_runner_cache_lookups",
    "Shared-cache lookups by kind (llm, tool) and outcome (hit, miss, error)",
    ["kind", "outcome"],
)
CACHE_OP_TIMEOUT_SECONDS = 2.0
"""A slow bucket costs a job at most this per lookup, then it is a miss."""
MAX_VALUE_BYTES = 512 * 1024
"""Bigger answers are not cached (NATS' default max payload is 1 MiB)."""


def cache_key(kind: str, payload: Any) -> str:
    """`<kind>.<sha256 of the canonical JSON>`: equal payloads, equal keys, whatever the dict
    order. The `v1` in the hashed text changes whenever the cached format does."""
    text = json.dumps(["v1", payload], sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return f"{kind}.{hashlib.sha256(text.encode()).hexdigest()}"


class ResponseCache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...


async def open_bucket(js: JetStreamContext, config: KeyValueConfig) -> KeyValue:
    """The bucket, created when missing (idempotent; concurrent replicas may race).

    An existing bucket is used as it is, so two services (or two versions) that disagree on
    its settings never fail each other's start-up; a bucket whose TTL differs from `config`
    is updated to it (the latest configuration wins) and the change is logged."""
    try:
        kv = await js.key_value(config.bucket)
    except BucketNotFoundError:
        try:
            return await js.create_key_value(config)
        except Exception:
            # another replica created it first, with settings of its own: use that one
            return await js.key_value(config.bucket)
    if config.ttl:
        info = await js.stream_info(f"KV_{config.bucket}")  # a bucket's stream, by NATS convention
        if info.config.max_age != config.ttl:
            info.config.max_age = config.ttl
            await js.update_stream(info.config)
            log.info("kv_bucket_ttl_updated", bucket=config.bucket, ttl_seconds=config.ttl)
    return kv


class KvCache:
    """`ResponseCache` over a KV bucket; a miss until `open()` has bound it."""

    def __init__(self, bucket: str, ttl_seconds: float, max_bytes: int, kind: str = "all") -> None:
        self.config = KeyValueConfig(
            bucket=bucket, history=1, ttl=ttl_seconds, max_bytes=max_bytes,
            max_value_size=MAX_VALUE_BYTES, storage=StorageType.FILE, direct=True,
            description="agent-runner: shared cache of LLM answers and tool results",
        )  # fmt: skip
        self._kv: KeyValue | None = None

    async def open(self, js: JetStreamContext) -> None:
        self._kv = await open_bucket(js, self.config)

    async def get(self, key: str) -> bytes | None:
        if self._kv is None:
            return None
        try:
            entry = await asyncio.wait_for(self._kv.get(key), CACHE_OP_TIMEOUT_SECONDS)
        except KeyNotFoundError:
            return None
        except Exception as exc:
            log.warning("cache_get_failed", key=key, error=f"{type(exc).__name__}: {exc}")
            CACHE_LOOKUPS.labels(kind=key.split(".", 1)[0], outcome="error").inc()
            return None
        return entry.value or None

    async def put(self, key: str, value: bytes) -> None:
        if self._kv is None or len(value) > MAX_VALUE_BYTES:
            return
        try:
            await asyncio.wait_for(self._kv.put(key, value), CACHE_OP_TIMEOUT_SECONDS)
        except Exception as exc:  # full bucket, NATS hiccup: the answer is just not cached
            log.warning("cache_put_failed", key=key, error=f"{type(exc).__name__}: {exc}")


def count_lookup(kind: str, hit: bool) -> None:
    CACHE_LOOKUPS.labels(kind=kind, outcome="hit" if hit else "miss").inc()
