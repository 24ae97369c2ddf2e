"""The local spool: where capture records wait, on disk, while a sink is down.

Each :meth:`Spool.append` writes one segment file (JSON lines) via a temp file, fsync and rename, so a
segment is either whole or absent after a crash. Segments are replayed oldest first and deleted only
after the sink confirmed them. A segment is one batch and is replayed as the same batch, which keeps the
S3 object key (derived from the batch's first uid) stable across retries: a replay after an ambiguous
failure overwrites the object rather than adding a duplicate.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path
from typing import IO, Any

SEGMENT_SUFFIX = ".jsonl"


class Spool:
    """Append-only segment files for one sink in one directory; thread-safe."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._counter = 0
        for stale in self.directory.glob(".tmp-*"):  # a crash mid-append: the records are in the queue's retry
            stale.unlink(missing_ok=True)
        self._segments = len(self.segments())

    def append(self, records: list[dict[str, Any]]) -> Path | None:
        if not records:
            return None
        data = "".join(json.dumps(r, separators=(",", ":"), allow_nan=False) + "\n" for r in records).encode()
        with self._lock:
            self._counter += 1
            name = f"{time.time_ns():020d}-{self._counter:08d}{SEGMENT_SUFFIX}"
        tmp = self.directory / f".tmp-{name}"
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        target = self.directory / name
        tmp.replace(target)
        with self._lock:
            self._segments += 1
        directory_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
        return target

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}"))

    def read(self, segment: Path) -> list[dict[str, Any]]:
        with segment.open("rb") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def remove(self, segment: Path) -> None:
        segment.unlink(missing_ok=True)
        with self._lock:
            self._segments = max(0, self._segments - 1)

    @property
    def segment_count(self) -> int:
        """Kept in memory: the drain thread asks on every loop and a directory listing each time is waste."""
        return self._segments

    def pending_records(self) -> int:
        total = 0
        for segment in self.segments():
            with segment.open("rb") as handle:
                total += sum(1 for line in handle if line.strip())
        return total


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
