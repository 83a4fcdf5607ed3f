"""The local run file: what `gatescope.watch(server=None)` records, and how to read one back.

The format (docs/protocol.md, "The run file"): the magic bytes b"GSRUN1\\n", then records, each
`kind (1 byte) | uint32 little-endian length | payload`:

    A  the AttachCreate JSON (docs/api.md); the first record, exactly once
    S  {"steps": [StepIn, ...]}
    F  uint16 little-endian module index (into the attach record's "modules") | one probe frame's
       bytes (docs/protocol.md), whose header run_id is "" (the importer sets it)
    E  {"status": "completed" | "stopped" | "failed", "error": str | null, "dropped_frames": int}

`FileSink` writes it append-only and flushes every record, so a script that dies leaves a file
whose records all read back, but for the last one if the script died while writing it.
`read_runfile` reads one: a ValueError with a sentence if it is not a run file at all; anything it
could not read after the attach record is a sentence in `RunFile.problems`, never skipped quietly.

What this is not: the server's validation of the attach record, the steps and the frames (the
importer, `POST /api/import`, checks them as the ingest endpoints do); frames stay undecoded here.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from app.core.frames import MAX_FRAME_BYTES, Frame
from app.core.probes import ProbeFrame
from gatescope.sink import check_status, close_at_exit, forget_at_exit

MAGIC = b"GSRUN1\n"
KINDS = {b"A": "attach", b"S": "steps", b"F": "frame", b"E": "end"}
_HEAD = struct.Struct("<cI")  # a record's kind and payload length
_MODULE = struct.Struct("<H")  # a frame record's module index


class FileSink:
    """Records a watch to a run file at `path` (which must not exist yet)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: BinaryIO | None = None
        self._modules = 0
        self._dropped = 0
        self._closed = False

    @property
    def stop_requested(self) -> bool:
        return False  # no dashboard can ask a file

    @property
    def dropped_frames(self) -> int:
        return self._dropped

    def open(self, attach: dict[str, Any]) -> None:
        """Create the file (FileExistsError if it exists) and write the attach record."""
        self._file = self.path.open("xb")
        self._modules = len(attach["modules"])
        self._file.write(MAGIC)
        self._write(b"A", orjson.dumps(attach))
        close_at_exit(self)

    def step(self, row: dict[str, Any]) -> None:
        self._write(b"S", orjson.dumps({"steps": [row]}))

    def frame(self, module: int, frame: ProbeFrame) -> None:
        """Encode `frame` (here, in the caller's thread) and append it; a frame above
        MAX_FRAME_BYTES, which no server would import, is refused with a warning and counted."""
        if not 0 <= module < self._modules:
            raise ValueError(f"module {module} is not one of the {self._modules} watched modules")
        data = Frame.from_probe("", frame).to_bytes()
        if len(data) > MAX_FRAME_BYTES:
            self._dropped += 1
            warnings.warn(too_large(frame.step, module, len(data)), stacklevel=2)
            return
        self._write(b"F", _MODULE.pack(module), data)

    def close(self, status: str = "completed", error: str | None = None, timeout: float = 30.0) -> None:
        """Write the end record and close the file."""
        check_status(status)
        if self._closed or self._file is None:
            return
        self._write(b"E", orjson.dumps({"status": status, "error": error, "dropped_frames": self._dropped}))
        self._file.close()
        self._closed = True
        forget_at_exit(self)

    def _write(self, kind: bytes, *parts: bytes) -> None:
        if self._file is None or self._closed:
            raise RuntimeError(f"the run file {self.path} is {'closed' if self._closed else 'not open'}")
        self._file.write(_HEAD.pack(kind, sum(map(len, parts))))
        for part in parts:
            self._file.write(part)
        self._file.flush()


def too_large(step: int, module: int, size: int) -> str:
    """The sentence for a frame no server takes."""
    return (
        f"gatescope: the frame of step {step} (module {module}) is {size / 2**20:.1f} MiB, above the "
        f"{MAX_FRAME_BYTES // 2**20} MiB a server takes: it is not recorded (probe a shorter sequence "
        f"or fewer layers)"
    )


# -- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFile:
    """A run file's contents: `end` is None if the script ended without closing it; `problems`
    says, in sentences, what could not be read (e.g. a last record cut short)."""

    attach: dict[str, Any]
    steps: list[dict[str, Any]]
    frames: list[tuple[int, bytes]]  # (module index, frame bytes), in file order
    end: dict[str, Any] | None
    problems: list[str]


def read_runfile(source: str | os.PathLike[str] | bytes | bytearray | memoryview) -> RunFile:
    """The run file at a path, or in bytes. ValueError with a sentence if it is not one."""
    data = memoryview(
        source if isinstance(source, bytes | bytearray | memoryview) else Path(source).read_bytes()
    )
    if bytes(data[: len(MAGIC)]) != MAGIC:
        raise ValueError(f"not a Gatescope run file: it does not start with {MAGIC!r}")
    problems: list[str] = []
    records = _records(data, problems)
    attach = _attach(next(records, None))
    result = RunFile(attach, [], [], None, problems)
    for record in records:
        if result.end is not None:
            problems.append(
                f"the file goes on after its end record (from byte {record.offset}): that is not read"
            )
            break
        end = _read_record(record, result)
        if end is not None:
            result = RunFile(attach, result.steps, result.frames, end, problems)
    return result


@dataclass(frozen=True)
class _Record:
    number: int  # 1 for the attach record
    offset: int  # of its kind byte
    kind: bytes
    payload: memoryview

    @property
    def name(self) -> str:
        return f"record {self.number} ({KINDS[self.kind]}, at byte {self.offset})"


def _records(data: memoryview, problems: list[str]) -> Iterator[_Record]:
    """The records of `data` after the magic, until one that cannot be framed (a problem)."""
    offset, number = len(MAGIC), 1
    while offset < len(data):
        if offset + _HEAD.size > len(data):
            problems.append(
                f"the file ends {len(data) - offset} bytes into the header of a record at byte {offset}"
            )
            return
        kind, length = _HEAD.unpack_from(data, offset)
        if kind not in KINDS:
            problems.append(
                f"record {number} at byte {offset} has an unknown kind {kind!r}: the file is damaged "
                f"there, and its last {len(data) - offset} bytes are not read"
            )
            return
        start = offset + _HEAD.size
        if start + length > len(data):
            problems.append(
                f"the last record ({KINDS[kind]}, at byte {offset}) is cut short: {len(data) - start} of its "
                f"{length} bytes are in the file (the script ended while writing it), so it is not read"
            )
            return
        yield _Record(number, offset, kind, data[start : start + length])
        offset, number = start + length, number + 1


def _attach(record: _Record | None) -> dict[str, Any]:
    if record is None or record.kind != b"A":
        raise ValueError("not a Gatescope run file: its first record is not a complete attach record (A)")
    attach = _json(record.payload)
    if not isinstance(attach, dict) or not isinstance(attach.get("modules"), list) or not attach["modules"]:
        raise ValueError(
            "not a Gatescope run file: its attach record is not a JSON object with a list of modules"
        )
    return attach


def _read_record(record: _Record, into: RunFile) -> dict[str, Any] | None:
    """Add a steps or frame record to `into` (or its problem); an end record is returned."""
    if record.kind == b"F":
        _read_frame(record, into)
        return None
    value = _json(record.payload)
    if record.kind == b"S" and isinstance(value, dict) and _rows(value.get("steps")):
        into.steps.extend(value["steps"])
    elif record.kind == b"E" and isinstance(value, dict):
        return value
    elif record.kind == b"A":
        into.problems.append(f"{record.name} repeats the attach record: it is not read")
    else:
        into.problems.append(f"{record.name} is not the JSON object such a record holds: it is not read")
    return None


def _read_frame(record: _Record, into: RunFile) -> None:
    if len(record.payload) < _MODULE.size:
        into.problems.append(f"{record.name} is too short to name its module: it is not read")
        return
    (module,) = _MODULE.unpack_from(record.payload)
    if module >= len(into.attach["modules"]):
        into.problems.append(f"{record.name} is of module {module}, which the attach record lacks: not read")
        return
    into.frames.append((module, bytes(record.payload[_MODULE.size :])))


def _rows(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(row, dict) for row in value)


def _json(payload: memoryview) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
