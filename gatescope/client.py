"""A small synchronous Python client for a Gatescope server: `gatescope.Client`.

What this is: `Client(base_url, token=None)`, one method per endpoint of docs/api.md
(httpx, sync), `wait` to poll a run until it has finished, and `stream` to follow a run's
websocket, decoding each message: text messages as dicts, probe frames as
{"type": "probe", "frame": app.core.frames.Frame} (its display frame, as viewers get it).

    from gatescope import Client

    with Client("http://127.0.0.1:8000") as gs:
        run = gs.create_run({"cell": "lstm", "hidden_size": 8, "task": {"name": "char_lm"}, "steps": 300})
        for message in gs.stream(run["id"]):
            if message["type"] == "step":
                print(message["steps"][-1]["loss"])
        print(gs.sample(run["id"], prime="h", length=20))

Errors: any answer other than 2xx raises `GatescopeError` with the status code and the server's
sentence. It imports httpx, orjson, websockets and numpy (frames decode with app.core.frames, which
needs no torch): no torch and no server code, so a script that only talks to a server starts fast.
What this is not: an async client, or a retry layer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Literal, cast
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import orjson
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.core.frames import Frame

FINISHED = frozenset({"completed", "stopped", "diverged", "failed", "interrupted"})


class GatescopeError(Exception):
    """The server answered with an error: `status_code` and its `detail` sentence."""

    def __init__(self, status_code: int, detail: Any) -> None:
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


class Client:
    """One server's API: `Client(base_url, token=None)`; close it (or use it as a context manager)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        self.http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        if response.is_error:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise GatescopeError(response.status_code, detail)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    @staticmethod
    def _run(run_id: str) -> str:
        return f"/api/runs/{quote(run_id, safe='')}"

    # -- the API ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("GET", "/api/health"))

    def catalog(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("GET", "/api/catalog"))

    def create_run(self, config: dict[str, Any]) -> dict[str, Any]:
        """Queue a run (a RunCreate dict); returns the run (RunPublic)."""
        return cast(dict[str, Any], self._json("POST", "/api/runs", json=config))

    def compare(self, config: dict[str, Any], cells: list[str] | None = None) -> dict[str, Any]:
        """One run per cell, identical but for the cell; returns {"group", "runs"}."""
        body: dict[str, Any] = {"config": config}
        if cells is not None:
            body["cells"] = cells
        return cast(dict[str, Any], self._json("POST", "/api/compare", json=body))

    def get_run(self, run_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("GET", self._run(run_id)))

    def list_runs(self, limit: int = 50, offset: int = 0, **filters: str | list[str]) -> dict[str, Any]:
        """{"items": [run summaries, newest first], "total": n matching}; filters: status, kind,
        cell, task, group, tag (a list: every one), q (in name, id or tags), e.g. status="completed"."""
        params: dict[str, Any] = {"limit": limit, "offset": offset, **filters}
        return cast(dict[str, Any], self._json("GET", "/api/runs", params=params))

    def update_run(self, run_id: str, **changes: Any) -> dict[str, Any]:
        """Rename a run or set its tags: update_run(id, name="baseline", tags=["sweep"]); the run."""
        return cast(dict[str, Any], self._json("PATCH", self._run(run_id), json=changes))

    def delete_runs(self, run_ids: list[str]) -> list[str]:
        """Delete these runs, all or none (an unknown id: GatescopeError 404); the ids deleted."""
        body = self._json("POST", "/api/runs/delete", json={"ids": run_ids})
        return cast(list[str], body["deleted"])

    def stop(self, run_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("POST", f"{self._run(run_id)}/stop"))

    def delete(self, run_id: str) -> None:
        self._request("DELETE", self._run(run_id))

    def metrics(self, run_id: str, since: int = 0) -> list[dict[str, Any]]:
        rows = self._json("GET", f"{self._run(run_id)}/metrics", params={"since": since})
        return cast(list[dict[str, Any]], rows)

    def metrics_csv(self, run_id: str) -> str:
        return self._request("GET", f"{self._run(run_id)}/metrics", params={"format": "csv"}).text

    def probes(self, run_id: str) -> list[int]:
        return cast(list[int], self._json("GET", f"{self._run(run_id)}/probes"))

    def probe(
        self, run_id: str, step: int | str = "latest", resolution: Literal["full", "display"] = "full"
    ) -> Frame:
        """A probe frame (`latest`, or a step number), decoded from its bytes."""
        path = f"{self._run(run_id)}/probes/{step}"
        return Frame.from_bytes(self._request("GET", path, params={"resolution": resolution}).content)

    def probe_json(
        self, run_id: str, step: int | str = "latest", resolution: Literal["full", "display"] = "full"
    ) -> dict[str, Any]:
        """A probe frame as the REST JSON (see docs/api.md for its keys)."""
        params = {"format": "json", "resolution": resolution}
        return cast(dict[str, Any], self._json("GET", f"{self._run(run_id)}/probes/{step}", params=params))

    def inspect(
        self,
        run_id: str,
        text: str | None = None,
        inputs: list[list[float]] | None = None,
        resolution: Literal["full", "display"] = "full",
    ) -> Frame:
        """Probe the run's latest weights on `text` (char_lm) or raw `inputs` (T x I): the frame."""
        body = {"text": text} if text is not None else {"inputs": inputs}
        path = f"{self._run(run_id)}/inspect"
        return Frame.from_bytes(
            self._request("POST", path, json=body, params={"resolution": resolution}).content
        )

    def sample(
        self,
        run_id: str,
        prime: str = "\n",
        length: int = 200,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> str:
        """Text written by a char_lm run: the prime and `length` more characters."""
        body: dict[str, Any] = {"prime": prime, "length": length, "temperature": temperature}
        if seed is not None:
            body["seed"] = seed
        return cast(str, self._json("POST", f"{self._run(run_id)}/sample", json=body)["text"])

    def checkpoint(self, run_id: str) -> bytes:
        """torch.save bytes; torch.load(io.BytesIO(data), weights_only=True)."""
        return self._request("GET", f"{self._run(run_id)}/checkpoint").content

    def export(self, run_id: str) -> bytes:
        """The run's zip archive."""
        return self._request("GET", f"{self._run(run_id)}/export").content

    def wait(self, run_id: str, timeout: float = 120.0, poll: float = 0.2) -> dict[str, Any]:
        """Poll until the run has finished; its final RunPublic. TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.get_run(run_id)
            if run["status"] in FINISHED:
                return run
            if time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} is still {run['status']} after {timeout} s")
            time.sleep(poll)

    # -- live ------------------------------------------------------------------------------

    def ws_url(self, run_id: str) -> str:
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = f"{parts.path}/ws/runs/{quote(run_id, safe='')}"
        return urlunsplit((scheme, parts.netloc, path, "", ""))

    def stream(self, run_id: str, open_timeout: float = 10.0) -> Iterator[dict[str, Any]]:
        """The run's websocket messages, decoded, until the server closes (after "end").

        Raises GatescopeError(4404) for an unknown run and GatescopeError(4401) without the token.
        """
        headers = {"Authorization": f"Bearer {self.token}"} if self.token is not None else None
        with connect(
            self.ws_url(run_id),
            additional_headers=headers,
            compression=None,
            max_size=None,
            open_timeout=open_timeout,
            proxy=None,
        ) as ws:
            try:
                for message in ws:
                    if isinstance(message, bytes):
                        yield {"type": "probe", "frame": Frame.from_bytes(message)}
                    else:
                        yield cast(dict[str, Any], orjson.loads(message))
            except ConnectionClosed:
                pass
            code, reason = ws.close_code, ws.close_reason
        if code is not None and code >= 4000:
            raise GatescopeError(code, reason or "closed by the server")
