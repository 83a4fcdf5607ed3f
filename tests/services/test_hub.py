"""The hub: fan-out, coalescing of steps and probes, joiners, slow viewers, channel lifetime.
Fake messages, no sockets."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from app.services.hub import Channel, Hub, Viewer
from app.services.interventions import Intervention
from app.services.messages import (
    EndMessage,
    InterventionMessage,
    ProbeMessage,
    StatusMessage,
    StepMessage,
)
from app.services.schemas import RunCreate, RunPublic, RunStatus

pytestmark = pytest.mark.anyio

CONFIG = RunCreate.model_validate(
    {"cell": "lstm", "hidden_size": 4, "task": {"name": "adding", "seq_len": 5}}
)


def run_public(status: RunStatus = "running", step: int = 0) -> RunPublic:
    return RunPublic(
        id="r1", status=status, config=CONFIG, created_at=datetime.now(UTC), step=step, steps=100
    )


def step(n: int) -> StepMessage:
    return StepMessage({"step": n, "loss": 1.0 / n, "metric": 0.5, "param_grad_norms": {"w": 0.1}})


class ListSink:
    """Collects what a viewer is sent; decodes text messages."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.raw_bytes: list[bytes] = []

    async def send_text(self, data: str) -> None:
        self.messages.append(orjson.loads(data))

    async def send_bytes(self, data: bytes) -> None:
        self.raw_bytes.append(data)
        self.messages.append(("probe", data))

    def steps(self) -> list[int]:
        return [
            s["step"]
            for m in self.messages
            if isinstance(m, dict) and m["type"] == "step"
            for s in m["steps"]
        ]

    def types(self) -> list[str]:
        return [m["type"] if isinstance(m, dict) else "probe" for m in self.messages]


class StuckSink:
    """A viewer that never reads: its first send never completes."""

    def __init__(self) -> None:
        self.calls = 0

    async def send_text(self, data: str) -> None:
        self.calls += 1
        await asyncio.Event().wait()

    async def send_bytes(self, data: bytes) -> None:
        self.calls += 1
        await asyncio.Event().wait()


async def settle(seconds: float = 0.15) -> None:
    await asyncio.sleep(seconds)


def watch(hub: Hub, viewer: Viewer, sink: Any) -> asyncio.Task[bool]:
    viewer.skip_to(0, -1)
    return asyncio.ensure_future(hub.serve(viewer, sink))


async def test_viewers_get_steps_probes_status_and_end_in_order() -> None:
    hub = Hub(asyncio.get_running_loop(), interval=0.01)
    sinks = [ListSink(), ListSink()]
    viewers = [hub.attach("r1", run_public("queued")) for _ in sinks]
    tasks = [watch(hub, v, s) for v, s in zip(viewers, sinks, strict=True)]
    hub.publish("r1", StatusMessage(run_public("running")))
    for n in range(1, 51):
        hub.publish("r1", step(n))
        if n % 10 == 0:
            hub.publish("r1", ProbeMessage(n, f"frame {n}".encode()))
        await asyncio.sleep(0.001)
    hub.publish("r1", StatusMessage(run_public("completed", 50)))
    hub.publish("r1", EndMessage(run_public("completed", 50)))
    results = await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert results == [True, True]
    for sink in sinks:
        assert sink.steps() == list(range(1, 51))
        statuses = [
            m["run"]["status"] for m in sink.messages if isinstance(m, dict) and m["type"] == "status"
        ]
        assert statuses == ["running"]  # the finished status comes as the end message
        assert sink.types()[-1] == "end" and sink.messages[-1]["run"]["status"] == "completed"
        assert sink.raw_bytes[-1] == b"frame 50"
        stamped = [s for m in sink.messages if isinstance(m, dict) for s in m.get("steps", [])]
        assert all(isinstance(s["time"], float) for s in stamped)  # stamped on publish when absent
    # the probe bytes are the very object published, shared by every viewer
    assert sinks[0].raw_bytes[-1] is sinks[1].raw_bytes[-1]


async def test_steps_are_batched_to_at_most_a_hundred_messages_a_second() -> None:
    hub = Hub(asyncio.get_running_loop())  # the real 10 ms interval
    sink = ListSink()
    task = watch(hub, hub.attach("r1", run_public()), sink)
    for n in range(1, 1001):
        hub.publish("r1", step(n))
        if n % 100 == 0:
            await asyncio.sleep(0.02)  # 1000 steps over ~0.2 s
    await settle(0.2)
    step_messages = [m for m in sink.messages if m["type"] == "step"]
    assert sink.steps() == list(range(1, 1001))
    assert 5 <= len(step_messages) <= 30  # ~0.25 s at <= 100 messages a second
    hub.publish("r1", EndMessage(run_public("completed")))
    assert await asyncio.wait_for(task, 2)


async def test_a_step_after_a_quiet_interval_goes_out_at_once_later_ones_wait_for_it() -> None:
    hub = Hub(asyncio.get_running_loop(), interval=30.0)  # so long that only the leading edge shows
    sinks = [ListSink(), ListSink()]
    for sink in sinks:
        watch(hub, hub.attach("r1", run_public()), sink)
    hub.publish("r1", step(1))
    await settle(0.05)
    assert [s.steps() for s in sinks] == [[1], [1]]  # no waiting: the channel was quiet
    for n in (2, 3):
        hub.publish("r1", step(n))
    await settle(0.05)
    assert [s.steps() for s in sinks] == [[1], [1]]  # held: the next wake-up is 30 s away
    hub.publish("r1", EndMessage(run_public("completed", 3)))  # an end sends what is pending
    await settle(0.05)
    assert [s.steps() for s in sinks] == [[1, 2, 3], [1, 2, 3]] and sinks[0].types()[-1] == "end"


async def test_viewers_at_the_same_place_share_one_encoded_step_message() -> None:
    hub = Hub(asyncio.get_running_loop(), interval=0.005)
    sent: list[list[str]] = [[], []]

    class TextSink(ListSink):
        def __init__(self, out: list[str]) -> None:
            super().__init__()
            self.out = out

        async def send_text(self, data: str) -> None:
            self.out.append(data)
            await super().send_text(data)

    tasks = [watch(hub, hub.attach("r1", run_public()), TextSink(out)) for out in sent]
    for n in range(1, 41):
        hub.publish("r1", step(n))
        await asyncio.sleep(0.002)
    hub.publish("r1", EndMessage(run_public("completed", 40)))
    assert await asyncio.wait_for(asyncio.gather(*tasks), 2) == [True, True]
    steps = [[m for m in out if '"type":"step"' in m] for out in sent]
    assert len(steps[0]) == len(steps[1]) >= 2
    assert all(a is b for a, b in zip(*steps, strict=True))  # the very same str: encoded once


async def test_probe_frames_go_out_at_most_every_probe_interval_and_the_newest_at_last() -> None:
    hub = Hub(asyncio.get_running_loop(), interval=0.0, probe_interval=0.1)
    sink = ListSink()
    task = watch(hub, hub.attach("r1", run_public()), sink)
    hub.publish("r1", ProbeMessage(1, b"p1"))
    await settle(0.02)
    assert sink.raw_bytes == [b"p1"]  # the first at once
    for n in (2, 3):
        hub.publish("r1", ProbeMessage(n, f"p{n}".encode()))
        hub.publish("r1", step(n))
    await settle(0.03)
    assert sink.raw_bytes == [b"p1"] and sink.steps() == [2, 3]  # steps flow; the frame waits
    await settle(0.15)
    assert sink.raw_bytes == [b"p1", b"p3"]  # then only the newest, with no other wake-up needed
    hub.publish("r1", ProbeMessage(4, b"p4"))
    hub.publish("r1", EndMessage(run_public("completed", 4)))
    assert await asyncio.wait_for(task, 2)
    assert sink.raw_bytes[-1] == b"p4" and sink.types()[-2:] == ["probe", "end"]  # the newest before end


async def test_publish_from_other_threads_keeps_each_threads_order() -> None:
    hub = Hub(asyncio.get_running_loop(), interval=0.005)
    sink = ListSink()
    task = watch(hub, hub.attach("r1", run_public()), sink)

    def produce() -> None:
        for n in range(1, 2001):
            hub.publish("r1", step(n))
        hub.publish("r1", EndMessage(run_public("completed")))

    thread = threading.Thread(target=produce)
    thread.start()
    assert await asyncio.wait_for(task, 5)
    thread.join()
    assert sink.steps() == list(range(1, 2001))


async def test_a_joiner_skips_what_its_snapshot_had_and_gets_the_rest() -> None:
    hub = Hub(asyncio.get_running_loop(), interval=0.005)
    for n in range(1, 501):
        hub.publish("r1", step(n))
    hub.publish("r1", ProbeMessage(500, b"p500"))
    await settle(0.05)
    viewer = hub.attach("r1", run_public())
    viewer.skip_to(300, 500)  # the snapshot held steps 1..300 and the probe of step 500
    sink = ListSink()
    task = asyncio.ensure_future(hub.serve(viewer, sink))
    await settle(0.05)
    for n in range(501, 511):
        hub.publish("r1", step(n))
    hub.publish("r1", EndMessage(run_public("completed")))
    assert await asyncio.wait_for(task, 2)
    assert sink.steps() == list(range(301, 511))
    assert sink.raw_bytes == []  # it already had the newest probe


async def test_steps_of_the_snapshot_that_reach_the_hub_late_are_not_sent_again() -> None:
    hub = Hub(asyncio.get_running_loop(), interval=0.005)
    for n in range(1, 250):
        hub.publish("r1", step(n))
    await settle(0.02)
    viewer = hub.attach("r1", run_public())
    viewer.skip_to(300, -1)  # storage already had up to 300; the hub has heard of 249 so far
    sink = ListSink()
    task = asyncio.ensure_future(hub.serve(viewer, sink))
    for n in range(250, 311):
        hub.publish("r1", step(n))
    hub.publish("r1", EndMessage(run_public("completed")))
    assert await asyncio.wait_for(task, 2)
    assert sink.steps() == list(range(301, 311))


async def test_a_viewer_that_never_reads_holds_no_copies_and_stalls_nothing() -> None:
    hub = Hub(asyncio.get_running_loop(), interval=0.0, retain_steps=100, max_buffer=1000)
    stuck, fast = StuckSink(), ListSink()
    slow_viewer, fast_viewer = hub.attach("r1", run_public()), hub.attach("r1", run_public())
    slow_task, fast_task = watch(hub, slow_viewer, stuck), watch(hub, fast_viewer, fast)
    published: list[bytes] = []
    for n in range(1, 10_001):
        hub.publish("r1", step(n))
        if n % 100 == 0:
            data = f"frame {n}".encode()
            published.append(data)
            hub.publish("r1", ProbeMessage(n, data))
            await asyncio.sleep(0)  # let the loop deliver: the fast viewer keeps up
    hub.publish("r1", EndMessage(run_public("completed")))
    assert await asyncio.wait_for(fast_task, 5)
    assert fast.steps() == list(range(1, 10_001))
    assert fast.raw_bytes[-1] is published[-1]
    channel = hub.channels["r1"]
    # the stuck viewer is a handful of integers and an event; it blocked in its first send
    assert stuck.calls == 1
    assert {
        type(getattr(slow_viewer, name)).__name__ for name in ("next_index", "probe_step", "version")
    } == {"int"}
    assert not hasattr(slow_viewer, "__dict__")
    # and the shared buffer stayed bounded although the stuck viewer is 10,000 steps behind
    assert len(channel.steps) <= hub.max_buffer + 256
    assert slow_task.done() is False
    slow_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow_task


async def test_a_viewer_further_behind_than_the_buffer_skips_the_oldest_steps() -> None:
    hub = Hub(asyncio.get_running_loop(), interval=0.0, retain_steps=10, max_buffer=300)
    viewer = hub.attach("r1", run_public())
    viewer.skip_to(0, -1)
    for n in range(1, 1001):
        hub.publish("r1", step(n))
    hub.publish("r1", EndMessage(run_public("completed")))
    await settle(0.05)
    sink = ListSink()
    assert await asyncio.wait_for(hub.serve(viewer, sink), 2)
    got = sink.steps()
    assert got == list(range(got[0], 1001))  # contiguous up to the newest
    assert 1000 - 300 - 256 < got[0] <= 1000 - 300 + 1


async def test_buffer_without_viewers_keeps_only_recent_steps() -> None:
    hub = Hub(asyncio.get_running_loop(), retain_steps=50)
    for n in range(1, 5001):
        hub.publish("r1", step(n))
    await settle(0.05)
    channel = hub.channels["r1"]
    assert len(channel.steps) < 50 + 256
    assert channel.numbers[-1] == 5000
    assert channel.index_after(4990) == channel.end - 10


async def test_status_changes_are_sent_once_each() -> None:
    hub = Hub(asyncio.get_running_loop(), interval=0.005)
    sink = ListSink()
    task = watch(hub, hub.attach("r1", run_public("queued")), sink)
    hub.publish("r1", StatusMessage(run_public("running")))
    await settle(0.05)
    hub.publish("r1", StatusMessage(run_public("stopped")))  # a finished status ends the stream too
    assert await asyncio.wait_for(task, 2)
    assert sink.types() == ["status", "end"]
    assert sink.messages[-1]["run"]["status"] == "stopped"


def applied(item_id: str, at_step: int) -> InterventionMessage:
    changes = {"lr": 0.01}
    return InterventionMessage(
        Intervention(id=item_id, step=at_step, changes=changes, applied_at=datetime.now(UTC))
    )


async def test_interventions_go_to_every_viewer_after_the_steps_before_them_once_each() -> None:
    hub = Hub(asyncio.get_running_loop(), interval=0.005)
    hub.publish("r1", applied("early", 0))  # before anyone watched: in every joiner's snapshot
    await settle(0.02)
    sinks = [ListSink(), ListSink()]
    viewers = [hub.attach("r1", run_public()) for _ in sinks]
    viewers[0].skip_to(0, -1, frozenset({"early"}))
    viewers[1].skip_to(0, -1, frozenset({"early", "i1"}))  # its snapshot was read after i1 was stored
    tasks = [asyncio.ensure_future(hub.serve(v, s)) for v, s in zip(viewers, sinks, strict=True)]
    for n in range(1, 11):
        hub.publish("r1", step(n))
    hub.publish("r1", applied("i1", 10))
    hub.publish("r1", step(11))
    hub.publish("r1", EndMessage(run_public("completed", 11)))
    assert await asyncio.wait_for(asyncio.gather(*tasks), 2) == [True, True]
    first = [m for m in sinks[0].messages if m["type"] == "intervention"]
    assert [(m["id"], m["step"], m["changes"]) for m in first] == [("i1", 10, {"lr": 0.01})]
    assert set(first[0]) == {"type", "id", "step", "changes", "applied_at"}
    before = [s["step"] for m in sinks[0].messages[: sinks[0].messages.index(first[0])] for s in m["steps"]]
    assert before[:10] == list(range(1, 11))  # the steps it follows came first (11 may share their batch)
    assert "intervention" not in sinks[1].types()  # its snapshot had it: not sent twice
    late = hub.attach("r1", run_public())
    assert late.interventions == 2  # a viewer joining now finds both in its snapshot


async def test_ended_channels_without_viewers_are_dropped_after_linger() -> None:
    hub = Hub(asyncio.get_running_loop(), linger=0.05)
    hub.publish("done", EndMessage(run_public("completed")))
    hub.publish("watched", EndMessage(run_public("completed")))
    await settle(0.01)
    viewer = hub.attach("watched", run_public("completed"))
    assert set(hub.channels) == {"done", "watched"}
    await settle(0.2)  # the sweeper runs every linger / 2
    assert set(hub.channels) == {"watched"}
    hub.detach(viewer)
    await settle(0.2)
    assert hub.channels == {}


async def test_close_ends_every_viewer_and_later_publishes_are_dropped() -> None:
    hub = Hub(asyncio.get_running_loop())
    sink = ListSink()
    task = watch(hub, hub.attach("r1", run_public()), sink)
    await settle(0.01)
    hub.close()
    assert await asyncio.wait_for(task, 1) is False
    hub.publish("r1", step(1))
    await settle(0.01)
    assert hub.channels["r1"].steps == []


def test_publish_after_the_loop_closed_does_not_raise() -> None:
    loop = asyncio.new_event_loop()
    hub = Hub(loop)
    loop.close()
    hub.publish("r1", step(1))  # the reader threads may outlive the loop at shutdown
    assert hub.channels == {}  # dropped, not queued on a dead loop


async def test_channel_index_after_finds_the_first_newer_step() -> None:
    channel = Channel("r1", None, 0.0)
    assert channel.index_after(5) == 0
    channel.steps, channel.numbers, channel.base = [b"{}"] * 3, [7, 8, 9], 100
    assert channel.index_after(0) == 100
    assert channel.index_after(8) == 102
    assert channel.index_after(99) == 103
