"""The envelope every bus message carries (ARCHITECTURE.md §2)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from tripmesh_contracts.ids import SafeId, new_id


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """Common fields. `id` is also sent as `Nats-Msg-Id` so JetStream de-duplicates.

    Consumers tolerate unknown fields (`extra="ignore"`); a breaking change is a new `vN`
    type, never an edit of an existing one.
    """

    model_config = ConfigDict(extra="ignore")

    TYPE: ClassVar[str] = ""

    id: SafeId = Field(default_factory=new_id)
    type: str = ""
    occurred_at: datetime = Field(default_factory=utcnow)
    user_id: SafeId
    plan_id: SafeId | None = None
    correlation_id: SafeId = Field(default_factory=new_id)

    def model_post_init(self, __context: object) -> None:
        if not self.type:
            self.type = self.TYPE

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        return cls.model_validate_json(data)
