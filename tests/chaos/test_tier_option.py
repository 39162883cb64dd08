"""The tier option reaches the battery's tests (a wiring check: no stack)."""

from __future__ import annotations


def test_the_tier_is_pr_or_full(tier: str) -> None:
    assert tier in {"pr", "full"}
