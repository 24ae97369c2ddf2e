"""bench.loop_stalls reads the scheduler's record right: off-CPU time goes to how the last stretch ended."""

from __future__ import annotations

from bench.loop_stalls import loop_stalls
from bench.serving import parse_wrk

# ``perf sched timehist --state`` as it prints it: a worker (pid 100) with its loop and a capture thread (101),
# another process's thread, and the header lines.
TIMEHIST = """\
           time    cpu  task name                       wait time  sch delay   run time  state
                        [tid/pid]                          (msec)     (msec)     (msec)
--------------- ------  ------------------------------  ---------  ---------  ---------  -----
   100.000100 [0000]  python[100]                         0.000      0.000      0.500      S
   100.004000 [0001]  python[101/100]                     0.000      0.010      3.000      S
   100.004700 [0000]  python[100]                         4.000      0.200      0.300      R
   100.005100 [0000]  wrk[200/199]                        0.000      0.000      0.100      S
   100.005300 [0000]  python[100]                         0.000      0.100      0.700      S
   100.007000 [0000]  python[100]                         1.500      0.050      2.000      R
   100.012000 [0001]  python[100]                         0.000      3.500      1.000      R
   100.012500 [0001]  python[300]                         9.000      0.000      1.000      S
"""


def test_off_cpu_time_is_split_by_how_the_loop_left_the_cpu() -> None:
    stalls = loop_stalls(TIMEHIST.splitlines(), [100])
    assert stalls.loop_cpu_ms == 0.5 + 0.3 + 0.7 + 2.0 + 1.0
    assert stalls.asleep_ms == 4.2 + 1.55  # after the two sleeps
    assert (stalls.sleeps_1ms, stalls.sleeps_3ms) == (2, 1)
    assert stalls.preempted_ms == 0.1 + 3.5  # after the two preemptions
    assert stalls.preempted_3ms == 1
    assert stalls.other_threads_cpu_ms == 3.0  # the worker's capture thread; not wrk, not another process
    assert stalls.loop_cpu_by_worker == {"100": stalls.loop_cpu_ms}


def test_wrk_output_is_parsed_with_its_errors() -> None:
    text = """
  Latency Distribution
     50%    3.43ms
     75%    5.22ms
     99%   16.91ms
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  15877.44
"""
    assert parse_wrk(text) == (15877.44, 3.43, 16.91, 7)
