"""The local spool: the write-ahead log of capture records, one directory per sink.

Every batch is written here first (write-ahead) and delivered to its sink afterwards, so a record leaves
memory within ``CAPTURE_FLUSH_SECONDS`` whatever the sink is doing. Each :meth:`Spool.write` creates one
segment file (JSON lines) via a temp file, fsync and rename, so a segment is either whole or absent after
a crash. Segments are delivered oldest first and deleted only after the sink confirmed them. A segment
is one batch and is replayed as the same batch, which keeps the S3 object key (derived from the batch's
first uid) stable across retries: a replay after an ambiguous failure overwrites the object rather than
adding a duplicate.

What cannot be delivered at all (a line that is not a record, a record the sink rejects permanently, a
segment that cannot be read) goes to the quarantine directory next to the spool (``<sink>-quarantine``)
instead of blocking the records behind it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any, overload

from app import json_codec
from app.json_codec import dumps

SEGMENT_SUFFIX = ".jsonl"


# JSON lines of the records that can be encoded, those records, and the ones that cannot (with why).
Encoded = tuple[bytes, list[dict[str, Any]], list[tuple[Any, str]]]


def encode(records: Iterable[dict[str, Any]]) -> Encoded:
    """JSON lines of the records that can be encoded, those records, and the ones that cannot (with why)."""
    lines: list[bytes] = []
    good: list[dict[str, Any]] = []
    bad: list[tuple[Any, str]] = []
    for record in records:
        try:
            line = dumps(record)
        except (TypeError, ValueError) as exc:
            bad.append((record, f"{type(exc).__name__}: {exc}"))
            continue
        lines.append(line + b"\n")
        good.append(record)
    return b"".join(lines), good, bad


def decode(data: bytes) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Records of a segment and the lines that are not records (corrupt, truncated, not an object with a uid).

    Parsed as the request path parses bodies (orjson; the standard library only for what orjson refuses):
    a replay runs on the serving worker's GIL, and the standard library took five times as long a line.
    """
    records: list[dict[str, Any]] = []
    bad: list[bytes] = []
    loads = json_codec.loads
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = loads(line)
        except ValueError:
            bad.append(line)
            continue
        if isinstance(record, dict) and isinstance(record.get("uid"), str):
            records.append(record)
        else:
            bad.append(line)
    return records, bad


class SpooledRecords(Sequence[dict[str, Any]]):
    """A batch's records kept as its JSON lines, decoded only when a record is needed.

    Why: a batch waiting for its sink was held as dicts, and dicts that live that long reach the cyclic GC's
    older generations, whose collections then walk all of them on the event loop. While a sink lagged behind
    under load, collections took up to 72 ms (docs/bench-serving.md, session 10). Bytes are one object the
    GC never walks. The count is known without decoding, the first record (the S3 key) decodes one line, and
    anything else (a batch split to find the record a sink refused) decodes them all.
    """

    __slots__ = ("_count", "_decoded", "lines")

    def __init__(self, lines: bytes, count: int) -> None:
        self.lines = lines
        self._count = count
        self._decoded: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if index == 0 and self._decoded is None and self._count:
            first, _ = decode(self.lines[: self.lines.find(b"\n") + 1 or len(self.lines)])
            if first:
                return first[0]
        return self.decoded()[index]

    def decoded(self) -> list[dict[str, Any]]:
        if self._decoded is None:
            self._decoded, _ = decode(self.lines)
            self._count = len(self._decoded)
        return self._decoded


def segment_records(segment: Path) -> int:
    """Records in a segment: from its name when written with a count, else by counting its lines."""
    parts = segment.name.removesuffix(SEGMENT_SUFFIX).split("-")
    if len(parts) == 3 and parts[2].startswith("n") and parts[2][1:].isdigit():
        return int(parts[2][1:])
    try:
        return segment.read_bytes().count(b"\n")
    except OSError:
        return 1


def segment_time(segment: Path) -> float:
    """Wall-clock time a segment was written, from its name (``<time_ns>-<counter>.jsonl``)."""
    try:
        return int(segment.name.split("-", 1)[0]) / 1e9
    except ValueError:
        return segment.stat().st_mtime


class Spool:
    """Append-only segment files for one sink in one directory, plus its quarantine; thread-safe."""

    def __init__(self, directory: str | Path, quarantine: str | Path | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.quarantine_dir = (
            Path(quarantine) if quarantine else self.directory.with_name(f"{self.directory.name}-quarantine")
        )
        self._lock = threading.Lock()
        self._counter = 0
        for stale in self.directory.glob(".tmp-*"):  # a crash mid-write: the records were never acknowledged
            stale.unlink(missing_ok=True)
        segments = self.segments()
        self._segments = len(segments)
        self._bytes = sum(_size(s) for s in segments)
        # Held open for the process's life: each write names its files relative to it and fsyncs it, with no
        # path walk and no open/close of the directory per batch (``write`` says why that matters).
        self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        weakref.finalize(self, os.close, self._dir_fd)

    # -- writing ------------------------------------------------------------------------------------------

    def write(self, data: bytes, count: int | None = None) -> Path:
        """One fsynced segment holding ``data``; raises OSError (disk full, read-only, I/O error).

        ``count`` (records in ``data``) goes into the name, so a restart knows the backlog without reading
        a spool that may hold gigabytes.

        Six system calls (open, write, fsync, close, rename, fsync of the directory), made straight on the
        descriptors: the spooler thread releases and takes back the GIL around each one, and every time it
        takes it back the event loop may have to wait (docs/bench-serving.md, session 11). A buffered file
        object and a directory opened per batch made eleven.
        """
        with self._lock:
            self._counter += 1
            tail = f"-n{count}" if count is not None else ""
            name = f"{time.time_ns():020d}-{self._counter:08d}{tail}{SEGMENT_SUFFIX}"
        tmp, fd = f".tmp-{name}", -1
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666, dir_fd=self._dir_fd)
            with memoryview(data) as view:
                written = 0
                while written < len(view):  # a short write is legal (a signal, a nearly full disk)
                    written += os.write(fd, view[written:])
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.rename(tmp, name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        except OSError:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):  # a partial temp file would only take space from the next attempt
                os.unlink(tmp, dir_fd=self._dir_fd)
            raise
        with self._lock:
            self._segments += 1
            self._bytes += len(data)
        os.fsync(self._dir_fd)
        return self.directory / name

    def append(self, records: list[dict[str, Any]]) -> Path | None:
        """Write records as one segment (records that cannot be encoded are left out); None when empty."""
        data, good, _bad = encode(records)
        return self.write(data, len(good)) if data else None

    # -- reading ------------------------------------------------------------------------------------------

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}"))

    def read(self, segment: Path) -> list[dict[str, Any]]:
        """The segment's records; lines that are not records are left out (see :meth:`read_segment`)."""
        return self.read_segment(segment)[1]

    def read_segment(self, segment: Path) -> tuple[bytes | None, list[dict[str, Any]], list[bytes]]:
        """The segment's bytes when every line is a record (None otherwise), its records and its bad lines.

        The bytes are what a sink that stores JSON lines can send as they are (``S3Sink.write_lines``);
        raises OSError when the file cannot be read.
        """
        data = segment.read_bytes()
        records, bad = decode(data)
        whole = not bad and data.count(b"\n") == len(records) and data.endswith(b"\n")
        return (data if whole else None), records, bad

    def remove(self, segment: Path, nbytes: int | None = None) -> None:
        size = _size(segment) if nbytes is None else nbytes
        try:
            segment.unlink()
        except FileNotFoundError:
            return
        with self._lock:
            self._segments = max(0, self._segments - 1)
            self._bytes = max(0, self._bytes - size)

    # -- quarantine ---------------------------------------------------------------------------------------

    def quarantine_lines(self, source: str, lines: list[bytes], reason: str) -> Path:
        """Keep what cannot be delivered for an operator: the lines, and why, next to the spool."""
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._counter += 1
            counter = self._counter
        target = self.quarantine_dir / f"{time.time_ns():020d}-{counter:08d}-{Path(source).stem}.bad"
        header = json.dumps({"source": source, "reason": reason}).encode() + b"\n"
        with target.open("wb") as handle:
            handle.write(header + b"".join(line.rstrip(b"\n") + b"\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
        return target

    def quarantine_segment(self, segment: Path) -> Path:
        """Move an unreadable segment aside whole (rename: no need to read it)."""
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        size = _size(segment)
        target = self.quarantine_dir / f"{segment.name}.unreadable"
        segment.replace(target)
        with self._lock:
            self._segments = max(0, self._segments - 1)
            self._bytes = max(0, self._bytes - size)
        return target

    # -- accounting ---------------------------------------------------------------------------------------

    @property
    def segment_count(self) -> int:
        """Kept in memory: the threads ask on every loop and a directory listing each time is waste."""
        return self._segments

    @property
    def bytes(self) -> int:
        """Bytes of all segments, kept in memory (the spool size cap is checked against it)."""
        return self._bytes

    def pending_records(self) -> int:
        total = 0
        for segment in self.segments():
            with segment.open("rb") as handle:
                total += sum(1 for line in handle if line.strip())
        return total


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class SlotLock:
    """An exclusive flock held for the process's life on ``<spool>/slot-N``.

    Why slots instead of the pid: a worker that restarts (or a new task on the same volume) takes over
    the slot of one that died and replays what it left behind; two live workers never share a spool.
    """

    def __init__(self, directory: Path, handle: IO[str]) -> None:
        self.directory = directory
        self.name = directory.name
        self._handle = handle

    def release(self) -> None:
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()


def claim_slot(root: str | Path, max_slots: int = 256) -> SlotLock:
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    for index in range(max_slots):
        directory = base / f"slot-{index}"
        directory.mkdir(exist_ok=True)
        handle = (directory / "lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return SlotLock(directory, handle)
    raise RuntimeError(f"all {max_slots} spool slots under {base} are held by live processes")
