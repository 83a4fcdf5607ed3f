"""What a run publishes as it trains: the RunManager's (and attached runs') messages to the hub.

- StepMessage(metrics)      each training step, as soon as it arrives (storage writes steps in
                            batches; the hub keeps recent steps, so a viewer who joins between
                            the two still sees every step);
- ProbeMessage(step, display) each probe frame: its display frame's bytes (the worker pooled it;
                            frames.Frame), published as soon as it arrives, then stored with the
                            full frame;
- StatusMessage(run)        every status change (running, paused and back; then the final one);
- InterventionMessage(item) each intervention, once the worker applied it and it is stored;
- EndMessage(run)           once, when the run has ended (after its final StatusMessage).

`Publish` is the callback that receives them. What this is not: the fan-out (hub.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.services.interventions import Intervention
from app.services.schemas import RunPublic


@dataclass(frozen=True)
class StepMessage:
    metrics: dict[str, Any]  # StepMetrics fields


@dataclass(frozen=True)
class ProbeMessage:
    step: int
    display: bytes  # the display frame's bytes (frames.Frame.pooled().to_bytes()), what viewers get


@dataclass(frozen=True)
class StatusMessage:
    run: RunPublic


@dataclass(frozen=True)
class EndMessage:
    run: RunPublic


@dataclass(frozen=True)
class InterventionMessage:
    item: Intervention  # as stored (Storage.interventions lists it)


Message = StepMessage | ProbeMessage | StatusMessage | InterventionMessage | EndMessage
Publish = Callable[[str, Message], None]
