"""The litellm adapter against a real (local) OpenAI-compatible embeddings endpoint, through
the real litellm, in a process of its own (importing litellm costs seconds and sets state)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("litellm") is None,
        reason="litellm is not installed (vector-sync's optional extra `litellm`)",
    ),
]


class EmbeddingsHandler(BaseHTTPRequestHandler):
    """Answers POST /v1/embeddings like OpenAI: one 3-d vector per input, by its length."""

    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        EmbeddingsHandler.requests.append({"path": self.path, "body": body})
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0, 0.0]}
            for i, t in enumerate(inputs)
        ]
        payload = json.dumps(
            {
                "object": "list",
                "data": list(reversed(data)),
                "model": body["model"],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def embeddings_server() -> Iterator[str]:
    EmbeddingsHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), EmbeddingsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_litellm_embedder_calls_the_configured_model(embeddings_server: str) -> None:
    script = textwrap.dedent("""
        import json, os
        from tripmesh_vector_sync.embedders import build_embedder
        from tripmesh_vector_sync.settings import Settings
        embedder = build_embedder(Settings())
        vectors = embedder.embed(["ab", "abcd"])
        print(json.dumps({"name": embedder.name, "dim": embedder.dim, "vectors": vectors,
                          "cost_map": os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP")}))
    """)
    env = {
        **os.environ,
        "VECTOR_SYNC_EMBEDDING_MODEL": "openai/text-embedding-3-small",
        "VECTOR_SYNC_EMBEDDING_API_BASE": embeddings_server,
        "OPENAI_API_KEY": "sk-test",
    }
    env.pop("VECTOR_SYNC_EMBEDDER", None)
    env.pop("LITELLM_LOCAL_MODEL_COST_MAP", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["name"] == "litellm/openai/text-embedding-3-small"
    assert out["vectors"] == [[2.0, 1.0, 0.0], [4.0, 1.0, 0.0]]  # in input order, not reply order
    assert out["dim"] == 3  # learnt from the provider with one probe
    assert out["cost_map"] == "True"  # set before litellm was imported
    bodies = [r["body"] for r in EmbeddingsHandler.requests]
    assert bodies[0]["input"] == ["ab", "abcd"] and bodies[0]["model"] == "text-embedding-3-small"
