"""The ceiling: a bare ASGI app that answers a constant, served by the same uvicorn stack as the app."""

from __future__ import annotations

from typing import Any

BODY = b'{"predictions":[{"uid":"0","prediction":0,"probability":0.5}],"model_version":1,"model_name":"churn"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the request body, as any real endpoint must
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
