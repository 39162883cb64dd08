"""What the engine needs from an LLM: one `complete` call, provider-neutral.

The engine only ever sees these types; litellm stays behind `LitellmClient`, and tests can
inject a fake client."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

LOCAL_PROVIDER = "tripmesh-local"
LOCAL_MODEL = f"{LOCAL_PROVIDER}/deterministic"
"""Model string of the deterministic local stand-in (see llm/local_model.py)."""


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1k tokens (the unit of the settings' AGENT_RUNNER_<AGENT>_*_PRICE_PER_1K)."""

    input_per_1k: Decimal
    output_per_1k: Decimal

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        return (self.input_per_1k * prompt_tokens + self.output_per_1k * completion_tokens) / 1000


FREE = ModelPrice(Decimal(0), Decimal(0))
CONSERVATIVE_PRICE = ModelPrice(Decimal("0.01"), Decimal("0.03"))
"""Charged (and flagged `cost_estimated`) for a model litellm cannot price when no fallback
price was given: a paid model is never recorded as free."""


@dataclass(frozen=True)
class ToolCallRequest:
    id: str
    name: str
    arguments: str
    """JSON text, exactly as the model produced it (may be invalid)."""


@dataclass(frozen=True)
class LlmResponse:
    content: str | None
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    cost_estimated: bool = False
    """True when the cost came from a fallback price, not the provider's price map."""
    provider: str = "unknown"
    model: str = ""
    latency_ms: int = 0
    cache_hit: bool = False
    finish_reason: str | None = None


class LlmCallError(Exception):
    """One LLM request failed (one HTTP attempt: clients never retry, the engine does)."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "unknown",
        latency_ms: int = 0,
        transient: bool = False,
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.latency_ms = latency_ms
        self.transient = transient
        """Timeouts, rate limits, 5xx, connection errors: worth trying again."""
        self.retry_after = retry_after
        """Seconds the provider asked us to wait (a 429's Retry-After), if it said."""
        self.status_code = status_code


Cacheable = Callable[[LlmResponse], bool]
"""Tells a caching client whether an answer is worth reusing (the engine: tool calls it would
run, or a final answer that validates - never an answer it is about to reject)."""


class LlmClient(Protocol):
    async def complete(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        temperature: float | None,
        max_tokens: int,
        timeout: float,
        api_base: str | None,
        fallback_price: ModelPrice | None = None,
        cacheable: Cacheable | None = None,
        call_ref: str | None = None,
    ) -> LlmResponse:
        """Exactly one request to the model (no retries: the caller owns them); raises
        LlmCallError when it fails. `call_ref` (the call's ledger reservation id) travels with
        the request, so the provider's invoice can be reconciled against the ledger."""
        ...


class CallConfig(Protocol):
    """The per-agent LLM settings the engine reads (settings.AgentConfig satisfies it)."""

    @property
    def model(self) -> str: ...
    @property
    def temperature(self) -> float | None: ...
    @property
    def max_tokens(self) -> int: ...
    @property
    def api_base(self) -> str | None: ...
    @property
    def timeout_seconds(self) -> float: ...
    @property
    def num_retries(self) -> int: ...
    @property
    def retry_backoff_seconds(self) -> float: ...
    @property
    def retry_backoff_max_seconds(self) -> float: ...
    @property
    def input_price_per_1k(self) -> Decimal: ...
    @property
    def output_price_per_1k(self) -> Decimal: ...


@dataclass(frozen=True)
class LlmCallConfig:
    """A plain CallConfig: the local stand-in with deterministic settings by default."""

    model: str = LOCAL_MODEL
    temperature: float | None = 0.0
    max_tokens: int = 4096
    api_base: str | None = None
    timeout_seconds: float = 60.0
    num_retries: int = 0
    retry_backoff_seconds: float = 0.0
    retry_backoff_max_seconds: float = 0.0
    input_price_per_1k: Decimal = Decimal(0)
    output_price_per_1k: Decimal = Decimal(0)
