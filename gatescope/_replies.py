"""What an HttpSink sends and reads back: a request's content, and the server's answers.

What this is: `encode` (a frame's bytes, nothing, or JSON) and the readings of an answer that the
sink acts on: its JSON object (`reply_json`), whether a 409 says the run has ended (`is_over`),
and the server's sentence for a log line (`sentence`). What this is not: the requests (gatescope.transport).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson


def encode(body: Any) -> tuple[bytes, dict[str, str]]:
    """A request's content and headers: bytes are a frame, None nothing, else JSON."""
    if isinstance(body, bytes):
        return body, {"Content-Type": "application/octet-stream"}
    if body is None:
        return b"", {}
    return orjson.dumps(body), {"Content-Type": "application/json"}


def reply_json(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object ({} if it is not one)."""
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def is_over(response: httpx.Response) -> bool:
    """A 409 that says the run has ended: its body carries "stop": true."""
    return response.status_code == 409 and reply_json(response).get("stop") is True


def sentence(response: httpx.Response) -> str:
    """The server's sentence: its {"detail": ...}, or the start of its body."""
    detail = reply_json(response).get("detail")
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):  # pydantic's 422: [{"loc": [...], "msg": ...}, ...]
        return "; ".join(
            f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail if isinstance(d, dict)
        )
    return response.text[:300] or response.reason_phrase
