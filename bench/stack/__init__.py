"""`make bench` (issue #13): the real stack, driven over its public API, measured end to end.

Modules: `llm_server` (the OpenAI-compatible server the agents call through litellm, with a
set latency), `systems` (what is measured: the stack as `make up` starts it, or the
in-process control of `control/`), `workload` (clients: sign-up, POST a plan, read its SSE stream
to the terminal event), `loops` (closed and open loop, warm-up, window), `meters` (CPU and
peak RSS per process), `report` (JSON + Markdown under reports/bench/), `run` (the CLI).
"""
