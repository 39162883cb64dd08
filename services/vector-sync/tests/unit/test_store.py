"""Which Qdrant errors count as an outage (pause and retry) rather than a failure."""

from __future__ import annotations

import httpx
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from tripmesh_vector_sync.store import is_qdrant_outage


def test_qdrant_outages_pause_and_other_errors_do_not() -> None:
    def status(code: int) -> UnexpectedResponse:
        return UnexpectedResponse(code, "x", b"", httpx.Headers())

    assert is_qdrant_outage(ResponseHandlingException(httpx.ConnectError("refused")))
    assert is_qdrant_outage(httpx.ReadTimeout("slow"))
    assert is_qdrant_outage(status(503)) and is_qdrant_outage(status(429))
    assert not is_qdrant_outage(status(400)) and not is_qdrant_outage(ValueError("bad"))
