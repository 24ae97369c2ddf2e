"""Where a server's event loops lose time under load: ``python -m bench.loop_stalls`` (Linux; not a test).

Serves the model of ``bench.serving`` with each server named (default ``app`` and ``app-nocapture``), one at
a time, loads it with wrk at concurrency 64, and records the kernel scheduler meanwhile (``perf sched
record``, Debian package ``linux-perf``; root or ``kernel.perf_event_paranoid`` <= 1). For the event-loop
thread of every worker (the worker process's main thread) it prints, over the recorded seconds:

- ``asleep``: time off CPU after going to sleep, with the sleeps of 1 ms and 3 ms or more counted apart. A
  loop with connections to serve sleeps only when it waits for the GIL; one that wrk gave no connections
  sleeps in ``epoll`` instead, which shows as a low CPU time of that worker (printed per worker);
- ``preempted``: time off CPU after the scheduler took the CPU away, and how many of those lasted 3 ms or
  more;
- the CPU time of the loop and of the worker's other threads (capture).

Why this exists (docs/bench-serving.md, session 9): sampling who holds the GIL (py-spy ``--gil``) said the
loop held it 93 % of the time and led to the conclusion that the capture threads did not stall it. The
scheduler says otherwise: with capture on, the loop slept on the GIL hundreds of times in 3 s, some of those
waits 3-11 ms long (the length of a p99), against almost never without capture. Those waits are what a p99
is made of; their count moves with a change far more steadily than wrk's p99 does on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bench.serving import _wait_http, parse_wrk, prepare_model, run_wrk, start, stop, wrk_script
from tests.support.servers import LOOPBACK, free_port

CONCURRENCY = 64


@dataclass
class LoopStalls:
    """Milliseconds (and counts) summed over the event-loop threads of a server's workers."""

    loop_cpu_ms: float = 0.0
    asleep_ms: float = 0.0
    sleeps_1ms: int = 0
    sleeps_3ms: int = 0
    preempted_ms: float = 0.0
    preempted_3ms: int = 0
    other_threads_cpu_ms: float = 0.0
    loop_cpu_by_worker: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        per_worker = "/".join(f"{ms:.0f}" for ms in self.loop_cpu_by_worker.values())
        return (
            f"loop cpu {self.loop_cpu_ms:6.0f} ms ({per_worker}) | asleep {self.asleep_ms:5.0f} ms "
            f"({self.sleeps_1ms} >= 1 ms, {self.sleeps_3ms} >= 3 ms) | preempted {self.preempted_ms:5.0f} ms "
            f"({self.preempted_3ms} >= 3 ms) | other threads cpu {self.other_threads_cpu_ms:5.0f} ms"
        )


def loop_stalls(timehist: Iterable[str], workers: Iterable[int]) -> LoopStalls:
    """Read ``perf sched timehist --state`` output for the main threads of ``workers`` (their pids).

    A row is one stretch on CPU: ``time [cpu] comm[tid] or comm[tid/pid] wait sch_delay run state``. The
    time off CPU before a stretch (wait + scheduling delay) belongs to how the previous stretch ended: ``S``
    (went to sleep) or ``R`` (preempted while runnable).
    """
    pids = {str(pid) for pid in workers}
    result = LoopStalls()
    ended: dict[str, str] = {}  # main thread -> state its last stretch ended in
    for raw in timehist:
        fields = raw.split()
        if len(fields) < 7 or not fields[0][:1].isdigit() or "[" not in fields[2]:
            continue
        ids = fields[2][fields[2].rindex("[") + 1 : -1]
        try:
            wait, delay, run = float(fields[3]), float(fields[4]), float(fields[5])
        except ValueError:
            continue
        tid, _, pid = ids.partition("/")
        if pid in pids:
            result.other_threads_cpu_ms += run
            continue
        if tid not in pids:
            continue
        off, previous = wait + delay, ended.get(tid)
        if previous == "S":
            result.asleep_ms += off
            result.sleeps_1ms += off >= 1.0
            result.sleeps_3ms += off >= 3.0
        elif previous == "R":
            result.preempted_ms += off
            result.preempted_3ms += off >= 3.0
        result.loop_cpu_ms += run
        result.loop_cpu_by_worker[tid] = result.loop_cpu_by_worker.get(tid, 0.0) + run
        ended[tid] = fields[6]
    return result


def _workers(server: subprocess.Popen[bytes]) -> list[int]:
    """The server's worker processes: its children with more than one thread (not the resource tracker)."""
    children = subprocess.run(["pgrep", "-P", str(server.pid)], check=False, capture_output=True, text=True)
    return [int(pid) for pid in children.stdout.split() if len(list(Path(f"/proc/{pid}/task").iterdir())) > 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="app,app-nocapture", help="comma list of bench.serving's app servers")
    parser.add_argument("--seconds", type=int, default=3, help="seconds recorded under load (default 3)")
    parser.add_argument("--rounds", type=int, default=1, help="recordings per server, alternated")
    args = parser.parse_args(argv)
    wrk, perf = shutil.which("wrk"), shutil.which("perf")
    if wrk is None or perf is None:
        print("needs wrk and perf: sudo apt-get install -y wrk linux-perf")
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-stalls-") as tmp:
        workdir = Path(tmp)
        model_zip, baseline, record = prepare_model(workdir, 3000)
        body = json.dumps(record)
        script = wrk_script(workdir, body)
        for round_ in range(args.rounds):
            for kind in args.servers.split(","):
                port = free_port()
                server = start(kind, port, model_zip, baseline, workdir)
                try:
                    _wait_http(port, server, body.encode())
                    run_wrk(wrk, port, script, CONCURRENCY, 2)  # warm-up: caches, lazy imports, the table
                    load = [wrk, "-t2", f"-c{CONCURRENCY}", f"-d{args.seconds + 2}s", "--latency", "-s", str(script)]
                    loading = subprocess.Popen([*load, f"http://{LOOPBACK}:{port}/predict"], stdout=subprocess.PIPE)
                    data = workdir / f"{kind}.perf"
                    record_argv = [perf, "sched", "record", "-a", "-o", str(data), "--", "sleep", str(args.seconds)]
                    subprocess.run(record_argv, capture_output=True, check=True)
                    rps, _p50, p99, _errors = parse_wrk(loading.communicate()[0].decode())
                    timehist = subprocess.run(
                        [perf, "sched", "timehist", "--state", "-i", str(data)],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout.splitlines()
                    stalls = loop_stalls(timehist, _workers(server))
                finally:
                    stop(server)
                print(f"round {round_} {kind:14s} {rps:8,.0f} req/s p99 {p99:6.2f} ms | {stalls.line()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
