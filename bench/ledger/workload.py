"""The usage events the ledger benchmark replays, and the totals they must add up to.

A deterministic (seeded) stream of `UsageEvent`s shaped like the runner's: ~1,000 users,
calls by the 7 agents on 3 models with per-token prices, a few cache hits (no cost) and
failures. Two shapes:

- `scattered` (the stress case): ~20,000 plans, every event of a random plan at a random
  time within 40 days. Consecutive events share almost no user-day or plan, so every event
  of a batch grows its own running totals (an upsert per event per total).
- `stream` (what USAGE holds, and so what the live consumer and a rebuild read): events in
  `occurred_at` order, as the runners publish them; a plan's calls (one per agent, 7 to 21
  with retries and re-runs) fall within its few minutes, with `--active` plans in flight at
  once, and the clock crosses 40 days over the run. A batch of 2,000 events then touches a
  few hundred plans and user-days instead of ~2,000. The expected totals are
kept independently of the service's code: costs rounded to `numeric(18, 8)` half away from
zero (what Postgres does on insert and the README promises), then summed as Decimals.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tripmesh_contracts import UsageEvent
from tripmesh_contracts.plans import AgentName

CENT_QUANTUM = Decimal("0.00000001")
BASE = datetime(2026, 10, 1, tzinfo=UTC)
SPAN_SECONDS = 40 * 24 * 3600
MODELS = (  # (model, provider, USD per prompt token, USD per completion token)
    ("gpt-5-mini", "openai", Decimal("0.00000025"), Decimal("0.000002")),
    ("claude-sonnet-4-5", "anthropic", Decimal("0.000003"), Decimal("0.000015")),
    ("gemini-2.5-flash", "gemini", Decimal("0.0000003"), Decimal("0.0000025")),
)
AGENTS = tuple(AgentName)
SHAPES = ("scattered", "stream")


@dataclass
class Expected:
    """What the ledger must hold once every event is in: per (user, UTC day), per (user, plan)."""

    events: int = 0
    cost: Decimal = Decimal(0)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    daily: dict[tuple[str, date], tuple[int, Decimal]] = field(default_factory=dict)
    plans: dict[tuple[str, str], tuple[int, Decimal]] = field(default_factory=dict)

    def add(self, e: UsageEvent) -> None:
        cost = e.cost_usd.quantize(CENT_QUANTUM, rounding=ROUND_HALF_UP)
        self.events += 1
        self.cost += cost
        self.prompt_tokens += e.prompt_tokens
        self.completion_tokens += e.completion_tokens
        key = (e.user_id, e.occurred_at.astimezone(UTC).date())
        calls, total = self.daily.get(key, (0, Decimal(0)))
        self.daily[key] = (calls + 1, total + cost)
        if e.plan_id is not None:
            pkey = (e.user_id, e.plan_id)
            calls, total = self.plans.get(pkey, (0, Decimal(0)))
            self.plans[pkey] = (calls + 1, total + cost)


class Workload:
    def __init__(
        self,
        *,
        users: int = 1000,
        plans: int = 20_000,
        seed: int = 6,
        shape: str = "scattered",
        active: int = 64,
    ) -> None:
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}")
        self.shape = shape
        self.active = active
        self.rng = random.Random(seed)
        self.users = [f"user-{i:04d}" for i in range(users)]
        # a plan has one owner; some users plan a lot more than others
        weights = [1.0 / (1 + i % 50) for i in range(users)]
        self.plan_owner = [
            (f"plan-{p:05d}", owner) for p, owner in enumerate(self.rng.choices(self.users, weights, k=plans))
        ]
        self.expected = Expected()

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def event(self, plan_id: str | None = None, user_id: str = "", at: datetime | None = None) -> UsageEvent:
        rng = self.rng
        if not user_id:
            plan_id, user_id = rng.choice(self.plan_owner)
            at = BASE + timedelta(seconds=rng.uniform(0, SPAN_SECONDS))
        assert at is not None
        if rng.random() < 0.02:  # a call outside any plan (e.g. an intake check)
            plan_id = None
        model, provider, per_prompt, per_completion = rng.choice(MODELS)
        prompt, completion = rng.randint(200, 6000), rng.randint(20, 1500)
        cache_hit = rng.random() < 0.05
        success = rng.random() > 0.01
        cost = Decimal(0) if cache_hit else prompt * per_prompt + completion * per_completion
        if rng.random() < 0.1:  # providers sometimes report more places than the ledger keeps
            cost += Decimal(rng.randint(0, 99)) * Decimal("0.0000000001")
        event = UsageEvent(
            id=self._id(),
            user_id=user_id,
            plan_id=plan_id,
            job_id=self._id(),
            run_id=self._id(),
            version=rng.randint(1, 3),
            agent=rng.choice(AGENTS),
            model=model,
            provider=provider,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=cost,
            latency_ms=rng.randint(300, 20_000),
            attempt=1 if rng.random() > 0.03 else 2,
            cache_hit=cache_hit,
            success=success,
            error=None if success else "RateLimitError: slow down",
            correlation_id=self._id(),
            occurred_at=at,
        )
        self.expected.add(event)
        return event

    def events(self, n: int) -> Iterator[UsageEvent]:
        if self.shape == "scattered":
            for _ in range(n):
                yield self.event()
            return
        yield from self._stream(n)

    def _stream(self, n: int) -> Iterator[UsageEvent]:
        """`n` events in time order from `active` plans in flight; a finished plan's slot is
        taken by a new plan of a random user (heavy users plan more, as in `scattered`)."""
        rng = self.rng
        weights = [1.0 / (1 + i % 50) for i in range(len(self.users))]
        step = SPAN_SECONDS / n  # the clock crosses the whole span over the run
        clock = BASE
        plans_started = 0

        def new_plan() -> list[Any]:
            nonlocal plans_started
            plans_started += 1
            owner = rng.choices(self.users, weights)[0]
            return [f"plan-{plans_started:07d}", owner, rng.randint(7, 21)]

        flying = [new_plan() for _ in range(self.active)]
        for _ in range(n):
            slot = rng.randrange(len(flying))
            plan_id, user_id, left = flying[slot]
            clock += timedelta(seconds=rng.expovariate(1 / step))
            yield self.event(plan_id, user_id, clock)
            if left <= 1:
                flying[slot] = new_plan()
            else:
                flying[slot][2] = left - 1
