"""The one error an operator sees: what is wrong and what to do about it (no traceback)."""

from __future__ import annotations


class OperatorError(Exception):
    def __init__(self, message: str, *, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.hint = hint
        self.exit_code = exit_code
