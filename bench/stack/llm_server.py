"""The LLM the agents call: an OpenAI-compatible server run by the bench, with a set latency.

It is the agent-runner's test stub (services/agent-runner/tests/support/openai_stub.py) run as
its own process: it answers `/v1/chat/completions` as the deterministic local model does (tool
calls, then the agent's JSON), so every run makes the same calls at the same cost; the agents
reach it through litellm's OpenAI provider over HTTP, as in production. Its latency is changed
between points without a restart (`POST /_stub/faults {"latency_ms": ...}`).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tripmesh_contracts.plans import AgentName
from tripmesh_devstack import procs
from tripmesh_devstack.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
STUB = ROOT / "services" / "agent-runner" / "tests" / "support" / "openai_stub.py"
MODEL = "openai/stub"


class LlmServer:
    """The stub as a process of its own (a new session, SIGTERMed if this process dies).

    The bench runs it at a fixed latency; the reliability battery (tests/chaos/harness.py)
    also gives it a seeded latency range (`"200-3000"`), an invoice file and a log."""

    def __init__(
        self,
        latency_ms: float | str = 0.0,
        *,
        seed: int | None = None,
        invoice_path: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.latency_ms = latency_ms
        self.seed = seed
        self.invoice_path = invoice_path
        """An fsync'd line per answered call: the provider's invoice."""
        self.log_path = log_path
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """What litellm is given as `api_base`."""
        return self.base_url + "/v1"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self, timeout: float = 60.0) -> None:
        """Until the stub answers (a liveness bound: it imports litellm, slow on a busy machine)."""
        argv = [sys.executable, str(STUB), "--port", str(self.port), "--latency-ms", str(self.latency_ms)]
        if self.seed is not None:
            argv += ["--seed", str(self.seed)]
        if self.invoice_path is not None:
            argv += ["--invoice", str(self.invoice_path)]
        if self.log_path is None:
            self.proc = procs.spawn(argv, death_signal=signal.SIGTERM)
        else:
            with self.log_path.open("ab") as log:
                self.proc = procs.spawn(argv, stdout=log, death_signal=signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.calls()
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    where = f" (log: {self.log_path})" if self.log_path else ""
                    raise RuntimeError(f"the OpenAI stub on port {self.port} did not start{where}") from None
                time.sleep(0.1)

    def set_latency(self, latency_ms: float) -> None:
        r = httpx.post(self.base_url + "/_stub/faults", json={"faults": [], "latency_ms": latency_ms})
        r.raise_for_status()
        self.latency_ms = latency_ms

    def calls(self) -> int:
        """Chat completions answered so far."""
        return int(httpx.get(self.base_url + "/_stub/health", timeout=5).json()["calls"])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def agent_env(self) -> dict[str, str]:
        """Every agent on this server through litellm; the shared LLM cache off (identical
        plans would be served from it); the model priced at 0 (a self-hosted model: the
        ledger's caps stay on, the bench's budgets are never the limit)."""
        env = {
            "OPENAI_API_KEY": "sk-bench-not-a-real-key",
            "AGENT_RUNNER_CACHE_ENABLED": "false",
            "AGENT_RUNNER_FALLBACK_INPUT_PRICE_PER_1K": "0",
            "AGENT_RUNNER_FALLBACK_OUTPUT_PRICE_PER_1K": "0",
        }
        for agent in AgentName:
            env[f"{agent.value.upper()}_AGENT_MODEL"] = MODEL
            env[f"{agent.value.upper()}_AGENT_API_BASE"] = self.api_base
        return env
