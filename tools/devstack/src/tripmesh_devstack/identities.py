"""Who may do what on the local stack: one NATS user and one Postgres role per service.

NATS (ARCHITECTURE §2, issue #8): each service's user may publish and subscribe only the
subjects its code uses - the runner cannot publish plan commands, the gateway cannot read
usage, nobody but `admin` may create or change streams. The lists are written from the
services' code (subjects, durables and KV buckets of tripmesh_contracts and their settings);
tests/devstack/test_identities.py checks them against tripmesh_contracts, and the e2e tests
run the whole system under them.

Streams and durable consumers are provisioned once by the stack as `admin` (a separate
provisioning identity); services then run with `<PREFIX>PROVISION_STREAMS=false`. A service
still creates the KV buckets it owns (their settings live in its code).

Postgres: each service's role owns its schemas and nothing else (vector-sync has none).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ADMIN = "admin"
"""Full access: provisioning, operators (tripctl), tests that observe the bus."""

AGENTS = ("location", "weather", "transport", "accommodation", "activity", "budget", "planning")
"""tripmesh_contracts.plans.AgentName, one runner durable each (`runner-<agent>`)."""

PLAN_STATUS_BUCKET = "plan-status"
RUNNER_CACHE_BUCKET = "agent-runner-cache"


@dataclass(frozen=True)
class NatsPermissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


@dataclass(frozen=True)
class ServiceIdentity:
    name: str
    env_prefix: str
    nats: NatsPermissions
    schemas: tuple[str, ...] = field(default=())

    @property
    def role(self) -> str:
        """The Postgres role (identifiers without dashes need no quoting)."""
        return f"tripmesh_{self.name.replace('-', '_')}"


def durable(stream: str, name: str) -> tuple[str, ...]:
    """Bind to, fetch from and ack an existing durable pull consumer (and re-create it with
    the same config, which FastStream may do at subscribe time)."""
    return (
        f"$JS.API.CONSUMER.INFO.{stream}.{name}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{name}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{name}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{name}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}",
        f"$JS.ACK.{stream}.{name}.>",
    )


def reader(stream: str) -> tuple[str, ...]:
    """Read a stream through ephemeral consumers and direct gets (replays, rebuilds, SSE),
    without any right to change the stream itself."""
    return (
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.INFO.{stream}.*",
        f"$JS.API.CONSUMER.DELETE.{stream}.*",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.*",
        f"$JS.ACK.{stream}.>",
        f"$JS.FC.{stream}.>",  # flow control replies of ordered push consumers
    )


def kv_bucket(bucket: str) -> tuple[str, ...]:
    """Create, update, read, write and watch a KV bucket the service owns or shares."""
    stream = f"KV_{bucket}"
    return (
        f"$JS.API.STREAM.CREATE.{stream}",
        f"$JS.API.STREAM.UPDATE.{stream}",
        f"$KV.{bucket}.>",
        *reader(stream),
    )


JS_BASICS = ("$JS.API.INFO",)
"""Account info (cheap, read-only): some clients ask for it when JetStream is opened."""

REQUESTER = ("_INBOX.>",)
"""Replies to our requests and JetStream API answers arrive on our inboxes."""


def _identity(
    name: str,
    prefix: str,
    *,
    publish: tuple[str, ...],
    subscribe: tuple[str, ...] = (),
    responds: bool = False,
    schemas: tuple[str, ...] = (),
) -> ServiceIdentity:
    return ServiceIdentity(
        name=name,
        env_prefix=prefix,
        nats=NatsPermissions(
            publish=(*JS_BASICS, *publish, *(("_INBOX.>",) if responds else ())),
            subscribe=(*REQUESTER, *subscribe),
        ),
        schemas=schemas,
    )


SERVICE_IDENTITIES: dict[str, ServiceIdentity] = {
    identity.name: identity
    for identity in (
        _identity(
            "gateway",
            "GATEWAY_",
            # commands, svc.* calls, SSE replays of a user's events (ephemeral consumers), and
            # answers to the server's auth callout requests (clients' own NATS credentials)
            publish=(
                "plans.cmd.>",
                "svc.planner.>",
                "svc.ledger.>",
                "svc.vectors.>",
                *reader("PLAN_EVENTS"),
                "$SYS._INBOX.>",
            ),
            subscribe=("$SYS.REQ.USER.AUTH",),
            schemas=("accounts",),
        ),
        _identity(
            "planner",
            "PLANNER_",
            publish=(
                "agents.job.>",
                "plans.evt.>",
                "plans.changed.>",
                "dlq.plans.cmd.>",
                "dlq.agents.result.>",
                *durable("PLAN_COMMANDS", "planner-commands"),
                *durable("AGENT_RESULTS", "planner-results"),
                *kv_bucket(PLAN_STATUS_BUCKET),
                "$JS.API.STREAM.INFO.DLQ",  # the DLQ depth it exports (tripmesh_kit.lag)
            ),
            subscribe=("svc.planner.>",),
            responds=True,
            schemas=("planner", "planner_checkpoints"),
        ),
        _identity(
            "agent-runner",
            "AGENT_RUNNER_",
            publish=(
                "agents.result.>",
                "usage.llm.>",
                "dlq.agents.job.>",
                "svc.ledger.reserve",
                "svc.ledger.settle",
                *(s for agent in AGENTS for s in durable("AGENT_JOBS", f"runner-{agent}")),
                *kv_bucket(RUNNER_CACHE_BUCKET),
                *kv_bucket(PLAN_STATUS_BUCKET),  # creates it when it starts before the planner
            ),
        ),
        _identity(
            "cost-ledger",
            "COST_LEDGER_",
            # estimates of unsettled reservations are usage events; account alerts
            publish=(
                "usage.llm.>",
                "users.evt.>",
                "dlq.usage.llm.>",
                *durable("USAGE", "cost-ledger-usage"),
                *reader("USAGE"),  # `rebuild`: a temporary consumer over the whole stream
            ),
            subscribe=("svc.ledger.>",),
            responds=True,
            schemas=("ledger",),
        ),
        _identity(
            "vector-sync",
            "VECTOR_SYNC_",
            publish=(
                "dlq.plans.changed.>",
                *durable("PLAN_CHANGES", "vector-sync-changes"),
                *reader("PLAN_CHANGES"),  # `reindex`
            ),
            subscribe=("svc.vectors.>",),
            responds=True,
        ),
    )
}


def nats_identity_names() -> list[str]:
    return [ADMIN, *SERVICE_IDENTITIES]
