"""LLM access. `base` is light; `litellm_client` and `local_model` import litellm (slow), so
they are not imported here."""

from tripmesh_agent_runner.llm.base import (
    LOCAL_MODEL,
    LOCAL_PROVIDER,
    CallConfig,
    LlmCallConfig,
    LlmCallError,
    LlmClient,
    LlmResponse,
    ModelPrice,
    ToolCallRequest,
)

__all__ = [
    "LOCAL_MODEL",
    "LOCAL_PROVIDER",
    "CallConfig",
    "LlmCallConfig",
    "LlmCallError",
    "LlmClient",
    "LlmResponse",
    "ModelPrice",
    "ToolCallRequest",
]
