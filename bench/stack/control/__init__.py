"""The control of `make bench` (issue #13): tripmesh's own planner graph and agents, in one process.

What a user would build instead of tripmesh: one FastAPI process (uvicorn) serving the part
of the public API the bench client uses (signup, login, POST /api/v1/plans -> 202 {"id"},
GET /api/v1/plans/{id}/events as SSE), running, in-process,

- the planner's LangGraph graph, unchanged (`tripmesh_planner.graph.build_graph`), checkpointed
  by LangGraph's Postgres checkpointer (`durability="sync"`, as the planner) in an embedded
  Postgres of its own, beside a `control.plans` table (one row per plan, written at POST and
  at finalize);
- the agent-runner's agents, unchanged (`tripmesh_agent_runner.agents.engine.run_agent`),
  reaching the bench's LLM server through litellm with the same model strings
  (`LlmServer.agent_env()`): where tripmesh publishes an AgentJob on the bus, the control
  starts the agent as a task and the driver awaits the stage's tasks before resuming the graph.

Modules: `agents` (a job -> the graph's outcome, in-process), `planner` (the graph's runtime
and the driver), `app` (the HTTP API), `system` (the bench's `System`: Postgres + this process).
What the control leaves out (each flatters it; the report's per-process CPU shows tripmesh's
share of each): no ledger (no usage events, no budget reservations), no vector indexing
(vector-sync), no per-event progress writes to a plan row, no durable event log (events live
in memory; a restart loses streams in flight), no auth beyond "any bearer token is a user".
Two differences cut the other way: every agent job starts at once (no bound like the runner's
AGENT_RUNNER_CONCURRENCY) and all LLM calls share one process's litellm/httpx client, whose
pool degrades with many concurrent requests (ARCHITECTURE.md §4) - what a user gets by default.
"""
