"""Refuse training data too large for this process's memory, from its size alone, before reading it.

Why: the readers load the whole file (bytes, then a frame, then the model's column copies). A file
larger than memory used to run the Batch container out of memory half-way and was reported as bad data
(or killed with 137). Checking the file or object size first turns that into one clear line with the
size, the limit and what to do, in milliseconds.

Two limits, the smaller wins:
- ``MAX_DATA_BYTES`` (environment; bytes, suffixes K/M/G allowed; default 2 GiB): an operator's cap.
- the memory this process can still use (cgroup limit minus usage in a container, else ``MemAvailable``)
  divided by how much a file of that format grows once parsed and copied for training (``EXPANSION``,
  measured on the synthetic churn data: a CSV's frame is ~2x the file, Parquet's ~10x, plus the raw bytes
  and two column copies for the fit).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from contracts.environment import DataSizeEnvironment
from jobs_common.errors import ConfigError, DataError

MAX_DATA_BYTES_ENV = DataSizeEnvironment.variable("max_data_bytes")
# Peak memory of a training run per byte of input file, by format (see the module docstring).
EXPANSION = {"csv": 6, "csv.gz": 30, "parquet": 20}
CGROUP = Path("/sys/fs/cgroup")


def human(size: float) -> str:
    """``1.5 GiB`` style, for messages."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - loop always returns


def configured_cap(env: Mapping[str, str] | None = None) -> int:
    """``MAX_DATA_BYTES`` parsed (``500M``, ``2G``, ``1073741824``; contracts.environment.DataSizeEnvironment);
    a bad value raises :class:`ConfigError` naming the variable, the value and the forms allowed."""
    return DataSizeEnvironment.from_env(env, error=ConfigError).max_data_bytes


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int | None:
    """Bytes this process can still allocate: the container's cgroup headroom, else ``MemAvailable``."""
    candidates = []
    limit, used = _read_int(CGROUP / "memory.max"), _read_int(CGROUP / "memory.current")  # cgroup v2
    if limit is None:  # cgroup v1
        limit, used = (
            _read_int(CGROUP / "memory/memory.limit_in_bytes"),
            _read_int(CGROUP / "memory/memory.usage_in_bytes"),
        )
    if limit is not None and limit < 1 << 60:  # v1 reports "no limit" as a huge number
        candidates.append(max(0, limit - (used or 0)))
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return min(candidates) if candidates else None


def data_kind(name: str) -> str:
    lower = name.lower()
    if lower.endswith(".csv.gz"):
        return "csv.gz"
    return "csv" if lower.endswith(".csv") else "parquet"


def check_data_size(
    size: int, where: str, *, kind: str | None = None, cap: int | None = None, memory: int | None = None
) -> None:
    """Raise :class:`DataError` if ``size`` bytes of ``where`` cannot be trained on in this process.

    ``kind`` defaults to the format ``where``'s name says (a prefix passes the most expanding format of its
    files); ``cap``/``memory`` default to :func:`configured_cap` and :func:`available_memory` (tests pass them).
    """
    cap = configured_cap() if cap is None else cap
    memory = available_memory() if memory is None else memory
    kind = kind or data_kind(where)
    need = size * EXPANSION[kind]
    advice = (
        "give the retrain job more memory (retrainMemoryMib) and raise MAX_DATA_BYTES, or train on less: "
        "a shorter time range or a sample (a SQL source with a narrower WHERE, or Parquet instead of CSV)"
    )
    if size > cap:
        raise DataError(
            f"{where} is {human(size)}, over {MAX_DATA_BYTES_ENV}={human(cap)}; refused before reading it. {advice}"
        )
    if memory is not None and need > memory:
        raise DataError(
            f"{where} is {human(size)}; training on a {kind} file that size needs about {human(need)} of memory "
            f"(x{EXPANSION[kind]}) but only {human(memory)} is available; refused before reading it. {advice}"
        )
