"""The run websocket, WS /ws/runs/{id}: a snapshot of what is stored, then the run live.

What this is: one endpoint. After accepting it sends {"type": "snapshot", "run", "metrics",
"probe_steps", "interventions"} (everything stored so far), then the latest probe frame as a
binary message, then hands the socket to the Hub, which sends step batches, interventions as they
are applied, newer probe frames, status changes and finally {"type": "end", "run"}, after which
the server closes with 1000. Every frame it sends is
a display frame (frames.Frame.pooled: at most 500 timesteps x 256 units), the same bytes for
every viewer; full-resolution frames are for GET /api/runs/{id}/probes/{step}. An unknown run closes
with 4404, a missing token with 4401, an Origin that is neither this server nor an allowed one
with 4403 (after accepting, so a browser sees the reason). A finished run gets the snapshot,
its latest probe and the end message at once. Messages from the client are read and ignored; a
disconnect at any point is routine and never logged as an error. See docs/protocol.md for every
message.

What this is not: the fan-out (app/services/hub.py) or the frame encoding (frames.py).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import anyio
import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from app.services.hub import Hub, Viewer, end_message
from app.services.manager import RunManager
from app.services.records import RunRecord
from app.services.schemas import FINISHED
from app.services.storage import Storage
from app.web.deps import HubDep, ManagerDep, SettingsDep, StorageDep, token_ok
from app.web.security import origin_allowed, presented_token

log = logging.getLogger(__name__)

router = APIRouter()

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # the server is shutting down
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403  # an Origin that is neither this server nor GATESCOPE_ALLOWED_ORIGINS
CLOSE_NOT_FOUND = 4404
# what a send to a socket the client has left may raise, depending on the server implementation
GONE = (WebSocketDisconnect, RuntimeError, OSError, ConnectionError)


class _Sink:
    """The Hub's view of a websocket."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    async def send_text(self, data: str) -> None:
        await self.websocket.send_text(data)

    async def send_bytes(self, data: bytes) -> None:
        await self.websocket.send_bytes(data)


@dataclass(frozen=True)
class _Snapshot:
    """What storage holds of a run when a viewer joins, read in one thread hop."""

    record: RunRecord
    text: str  # the snapshot message
    probe: bytes | None  # the latest display frame's bytes
    last_step: int  # the last stored step (0: none)
    probe_step: int  # the latest probe's step (-1: none)
    interventions: frozenset[str]  # the ids of the interventions in `text`


def _snapshot(storage: Storage, manager: RunManager, run_id: str) -> _Snapshot | None:
    """The run as stored (with its queue position), None if there is no such run."""
    record = storage.get_run(run_id)
    if record is None:
        return None
    metrics = storage.metrics(run_id)
    probe_steps = storage.probe_steps(run_id)
    probe = storage.probe(run_id, probe_steps[-1], "display") if probe_steps else None
    interventions = storage.interventions(run_id)
    text = orjson.dumps(
        {
            "type": "snapshot",
            "run": manager.public(record).model_dump(mode="json"),
            "metrics": metrics,
            "probe_steps": probe_steps,
            "interventions": [item.model_dump(mode="json") for item in interventions],
        }
    ).decode()
    last_step = int(metrics[-1]["step"]) if metrics else 0
    probe_step = probe_steps[-1] if probe_steps else -1
    return _Snapshot(record, text, probe, last_step, probe_step, frozenset(i.id for i in interventions))


async def _until_disconnect(websocket: WebSocket) -> None:
    """Read (and drop) client messages until the client goes away."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


def _reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    return text.encode()[:120].decode(errors="ignore")


async def _close(websocket: WebSocket, code: int, reason: str = "") -> None:
    if websocket.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(*GONE):
            await websocket.close(code, reason)


@router.websocket("/ws/runs/{run_id}")
async def watch_run(
    websocket: WebSocket,
    run_id: str,
    storage: StorageDep,
    manager: ManagerDep,
    hub: HubDep,
    settings: SettingsDep,
) -> None:
    await websocket.accept()
    if not origin_allowed(websocket, settings):
        origin = websocket.headers.get("origin", "")
        log.warning("refused a websocket for run %s from origin %r", run_id, origin)
        await _close(websocket, CLOSE_FORBIDDEN, _reason(f"origin {origin} may not watch runs here"))
        return
    if not token_ok(settings, presented_token(websocket)):
        await _close(websocket, CLOSE_UNAUTHORIZED, "this server needs a token: add ?token=<token> or log in")
        return
    try:
        record = await anyio.to_thread.run_sync(storage.get_run, run_id)
        if record is None:
            await _close(websocket, CLOSE_NOT_FOUND, _reason(f"there is no run with id {run_id!r}"))
            return
        viewer = hub.attach(run_id, manager.public(record))  # before the snapshot: nothing falls between
        try:
            await _watch(websocket, storage, manager, hub, viewer, run_id)
        finally:
            hub.detach(viewer)
    except GONE:
        pass  # the client left: nothing to report
    except Exception:
        log.exception("websocket for run %s failed", run_id)
        await _close(websocket, 1011, "internal error")


async def _watch(
    websocket: WebSocket, storage: Storage, manager: RunManager, hub: Hub, viewer: Viewer, run_id: str
) -> None:
    snapshot = await anyio.to_thread.run_sync(_snapshot, storage, manager, run_id)
    if snapshot is None:  # deleted between the two reads
        await _close(websocket, CLOSE_NOT_FOUND, _reason(f"there is no run with id {run_id!r}"))
        return
    await websocket.send_text(snapshot.text)
    if snapshot.probe is not None:
        await websocket.send_bytes(snapshot.probe)
    if snapshot.record.status in FINISHED:
        await websocket.send_text(end_message(snapshot.record.to_public().model_dump_json()))
        await _close(websocket, CLOSE_NORMAL)
        return
    viewer.skip_to(snapshot.last_step, snapshot.probe_step, snapshot.interventions)
    outcome: list[bool] = []  # set if the hub finished: True after the end message, False at shutdown

    async with anyio.create_task_group() as tasks:

        async def serve() -> None:
            with contextlib.suppress(*GONE):
                outcome.append(await hub.serve(viewer, _Sink(websocket)))
            tasks.cancel_scope.cancel()

        async def leave() -> None:
            with contextlib.suppress(*GONE):
                await _until_disconnect(websocket)
            tasks.cancel_scope.cancel()

        tasks.start_soon(serve)
        tasks.start_soon(leave)
    if outcome:
        await _close(websocket, CLOSE_NORMAL if outcome[0] else CLOSE_GOING_AWAY)
