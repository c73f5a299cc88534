#!/usr/bin/env python3
"""Side-by-side benchmark runner: mp beside CPython's multiprocessing and the raw system calls.

One invocation measures all three on this machine, in the same run:
  * mp's Google Benchmark programs (<build-dir>/bench/<binary> --benchmark_format=json);
  * CPython's multiprocessing: <baseline-dir>/py_baseline.py --only <cases> [--quick], and the
    figures py_baseline.py lacks: bench/py_cases.py --only <cases> [--quick] (in this repository);
  * the raw limits: <baseline-dir>/limits.c, compiled here with gcc and run [--quick];
then prints, per case, the three figures, the ratios and the case's targets with PASS/MISS.

    python3 bench/run.py                          # build dir: <repo>/build (or ./build)
    python3 bench/run.py --build-dir build-bench --quick --only fork,spawn --json out.json
    python3 bench/run.py --only connection        # a group: process, connection, pingpong, throughput,
                                                  # sync, sync_pingpong, shm, queue, queue_throughput,
                                                  # queue_pingpong, pool
    python3 bench/run.py --only 'pp_*_same_cpu'   # a shell-style pattern over the case names

The baselines print one JSON object per line ({"case", "metric", "value", "unit"}). If the
baseline folder is missing (MP_BASELINE_DIR, --baseline-dir, default <repo>/../shared/baseline),
mp's figures are printed with bench/py_cases.py's alone. Standard library only.

To add a case, add a CaseDef to CASES (and, for a new program, a target in bench/CMakeLists.txt).
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


# ---- case definitions -------------------------------------------------------------------------

@dataclass(frozen=True)
class Ref:
    """One figure: from mp's bench ("mp": case = benchmark name; metric empty for the wall-clock
    time per iteration, "bytes_per_second", shown as GB/s, or a user counter: "msg_per_s" is shown
    as msg/s, see MP_COUNTER_UNITS), from py_baseline.py ("py"), from
    bench/py_cases.py ("pyx": case = its --only name) or from limits.c ("limits"): case and metric
    of its JSON lines."""
    source: str
    case: str
    metric: str = ""
    label: str = ""          # how the table names it

    def key(self) -> tuple[str, str, str]:
        return (self.source, self.case, self.metric)


@dataclass(frozen=True)
class CaseDef:
    key: str                           # the name --only takes
    title: str
    mp: Ref                            # mp's figure (source "mp")
    binary: str = "bench_process"      # the bench program that measures mp (and "mp" refs)
    python: Ref | None = None          # CPython's figure (source "py", or "pyx": bench/py_cases.py)
    py_case: str = ""                  # the py_baseline.py --only name that yields a "py" figure
    raw: tuple[Ref, ...] = ()          # the raw limit: the first one measured is used
    max_over_raw: float | None = None  # target (times): mp / raw at most this
    min_of_raw: float | None = None    # target (rates): mp / raw at least this
    min_speedup_vs_python: float | None = None  # target: mp at least this many times faster
    max_us: float | None = None        # target (times): mp's own figure at most this many microseconds
    higher_is_better: bool = False     # rates (msg/s, GB/s) rather than times
    context: tuple[Ref, ...] = ()      # more figures shown for comparison, no target
    alt: Ref | None = None             # a second raw figure, its ratio in its own column, no target
                                       # (bench_connection's own raw measurement, same footprint)
    groups: tuple[str, ...] = ()       # names --only also takes, selecting several cases

    def refs(self) -> list[Ref]:
        out = [self.mp, *self.raw, *self.context]
        if self.alt:
            out.append(self.alt)
        if self.python:
            out.append(self.python)
        return out


# The raw references used by several cases.
LIMIT_FORK = Ref("limits", "process_create", "fork_exit_wait", "fork+_exit+waitpid (limits.c)")
CXX_FORK = Ref("mp", "raw_fork_exit_waitpid", label="fork+_exit+waitpid (bench_process itself)")
CXX_SPAWN_SELF = Ref("mp", "raw_posix_spawn_self_waitpid",
                     label="posix_spawn(bench_process --exit-now)+waitpid")

PROCESS_CASES: list[CaseDef] = [
    CaseDef(
        key="fork", title="Process start+join, fork", groups=("process",),
        mp=Ref("mp", "process_start_join/fork"),
        python=Ref("py", "process_start_join", "fork"), py_case="process_start",
        raw=(LIMIT_FORK, CXX_FORK), max_over_raw=1.5, min_speedup_vs_python=10,
        context=(CXX_FORK, Ref("py", "process_start_join", "os_fork_exit_waitpid",
                               "os.fork()+os._exit+waitpid from CPython"))),
    CaseDef(
        key="spawn", title="Process start+join, spawn", groups=("process",),
        mp=Ref("mp", "process_start_join/spawn"),
        python=Ref("py", "process_start_join", "spawn"), py_case="process_start",
        raw=(CXX_SPAWN_SELF,), max_over_raw=2.0, min_speedup_vs_python=10,
        context=(Ref("limits", "process_create", "posix_spawn_true_wait", "posix_spawn(/bin/true)+waitpid (limits.c)"),
                 Ref("limits", "process_create", "fork_exec_self_wait", "fork+exec(limits --exit-now)+waitpid (limits.c)"),
                 Ref("py", "process_start_join", "python_c_pass_subprocess", "python3 -c pass via subprocess.run"))),
    CaseDef(
        key="forkserver", title="Process start+join, forkserver", groups=("process",),
        mp=Ref("mp", "process_start_join/forkserver"),
        python=Ref("py", "process_start_join", "forkserver"), py_case="process_start",
        raw=(LIMIT_FORK, CXX_FORK), max_over_raw=3.0, min_speedup_vs_python=10),
]

# Connections (bench_connection). Every case runs in three placements: the mp benchmark name ends
# in /unpinned, /same_cpu, /cross_cpu; the baselines' metrics in "", "_same_cpu", "_cross_cpu".
# On a 2-vCPU VM the _same_cpu round trips are the stable measure of software cost.
PLACEMENTS = (("unpinned", "", "unpinned"), ("same_cpu", "_same_cpu", "same CPU"),
              ("cross_cpu", "_cross_cpu", "cross CPU"))
PINGPONG_MAX_OVER_RAW = 1.2     # issue 3: a round trip at most 1.2x the raw ping-pong
THROUGHPUT_MIN_OF_RAW = 0.8     # issue 3: 64 MiB messages at least 0.8x the raw stream


def _connection_cases() -> list[CaseDef]:
    out = []
    # key, mp benchmark, title, py_baseline case, raw: socketpair or pipe
    pingpongs = (
        ("pp_bytes64", "bytes64", "Pipe() ping-pong, send_bytes/recv_bytes_into 64 B",
         "pipe_pingpong_bytes64", "socketpair"),
        ("pp_bytes64_alloc", "bytes64_alloc", "Pipe() ping-pong, send_bytes/recv_bytes 64 B",
         "pipe_pingpong_bytes64", "socketpair"),
        ("pp_object", "object", "Pipe() ping-pong, send/recv {int, double, string}",
         "pipe_pingpong_pickle", "socketpair"),
        # Two pipes: the raw limit is the pipe ping-pong (two pipe()s), as CPython's table has it.
        ("pp_simplex64", "simplex64", "Pipe(false) x2 ping-pong, 64 B",
         "simplex_pingpong_bytes64", "pipe"),
    )
    for key, what, title, py_case, kind in pingpongs:
        for pl, suffix, pl_title in PLACEMENTS:
            limit = Ref("limits", f"{kind}_pingpong", "rtt" + suffix, f"{kind} ping-pong 64 B, {pl_title} (limits.c)")
            own = Ref("mp", f"raw_pingpong/{kind}64/{pl}", label=f"{kind} ping-pong 64 B, {pl_title} (bench_connection)")
            out.append(CaseDef(
                key=f"{key}_{pl}", title=f"{title}, {pl_title}", binary="bench_connection",
                groups=("connection", "pingpong"),
                mp=Ref("mp", f"conn_pingpong/{what}/{pl}"),
                python=Ref("py", py_case, "rtt" + suffix), py_case=py_case,
                raw=(limit, own), max_over_raw=PINGPONG_MAX_OVER_RAW, alt=own))
    # key, mp benchmark, title, raw kind, target
    streams = (
        ("tp_socketpair_1MiB", "socketpair_1MiB", "Pipe() stream, 1 MiB msgs, recv_bytes_into", "socketpair", None),
        ("tp_socketpair_64MiB", "socketpair_64MiB", "Pipe() stream, 64 MiB msgs, recv_bytes_into", "socketpair",
         THROUGHPUT_MIN_OF_RAW),
        ("tp_socketpair_64MiB_alloc", "socketpair_64MiB_alloc", "Pipe() stream, 64 MiB msgs, recv_bytes", "socketpair",
         THROUGHPUT_MIN_OF_RAW),
        ("tp_pipe_1MiB", "pipe_1MiB", "Pipe(false) stream, 1 MiB msgs, recv_bytes_into", "pipe", None),
        ("tp_pipe_64MiB", "pipe_64MiB", "Pipe(false) stream, 64 MiB msgs, recv_bytes_into", "pipe",
         THROUGHPUT_MIN_OF_RAW),
        ("tp_pipe_64MiB_alloc", "pipe_64MiB_alloc", "Pipe(false) stream, 64 MiB msgs, recv_bytes", "pipe",
         THROUGHPUT_MIN_OF_RAW),
    )
    for key, what, title, kind, target in streams:
        size = what.split("_")[1]
        for pl, suffix, pl_title in PLACEMENTS:
            limit = Ref("limits", f"{kind}_throughput", "1MiB_writes" + suffix,
                        f"{kind} stream, 1 MiB write()s, {pl_title} (limits.c)")
            own = Ref("mp", f"raw_throughput/{kind}_1MiB/{pl}", "bytes_per_second",
                      f"{kind} stream, 1 MiB write()s, {pl_title} (bench_connection)")
            same_size = Ref("mp", f"raw_throughput/{kind}_{size}/{pl}", "bytes_per_second",
                            f"{kind} stream, {size} write()s/read()s, {pl_title} (bench_connection)")
            py_metric = f"{kind}_{size}_msgs{suffix}"
            out.append(CaseDef(
                key=f"{key}_{pl}", title=f"{title}, {pl_title}", binary="bench_connection",
                groups=("connection", "throughput"),
                mp=Ref("mp", f"conn_throughput/{what}/{pl}", "bytes_per_second"),
                python=Ref("py", "conn_throughput", py_metric), py_case="conn_throughput",
                raw=(limit, own), min_of_raw=target, higher_is_better=True, alt=same_size))
    return out


# Synchronization primitives (bench_sync). Uncontended figures are per acquire+release pair (or
# set+clear), in this process; the raw limit is one pair of sem_wait+sem_post on a process-shared
# sem_t (mp's Lock, RLock, Semaphore and Event are named POSIX semaphores, the same sem_t).
LIMIT_SEM_PAIR = Ref("limits", "sem_pshared", "wait_post", "sem_t wait+post, pshared (limits.c)")
CXX_SEM_PAIR = Ref("mp", "raw_sem_pshared_wait_post", label="sem_t wait+post, pshared (bench_sync)")
LIMIT_SEM_OPEN = Ref("limits", "sem_open", "open_close_unlink", "sem_open+sem_close+sem_unlink (limits.c)")
CXX_SEM_OPEN = Ref("mp", "raw_sem_open_unlink_close", label="sem_open+sem_unlink+sem_close (bench_sync)")
LIMIT_MUTEX = Ref("limits", "pthread_mutex_pshared", "lock_unlock",
                  "pthread_mutex lock+unlock, pshared (limits.c)")
SYNC_MAX_OVER_SEM = 1.5   # issue: Lock and Semaphore acquire+release at most 1.5x a raw sem_t pair
EVENT_MAX_US = 0.050      # issue: Event set+clear at most 50 ns


def _sync_cases() -> list[CaseDef]:
    g = ("sync",)
    out = [
        CaseDef(key="sync_lock", title="Lock acquire+release, uncontended", binary="bench_sync", groups=g,
                mp=Ref("mp", "lock_acquire_release"),
                python=Ref("py", "lock", "acquire_release"), py_case="sync",
                raw=(LIMIT_SEM_PAIR, CXX_SEM_PAIR), max_over_raw=SYNC_MAX_OVER_SEM, alt=CXX_SEM_PAIR,
                context=(LIMIT_MUTEX,)),
        CaseDef(key="sync_rlock", title="RLock acquire+release, uncontended", binary="bench_sync", groups=g,
                mp=Ref("mp", "rlock_acquire_release"),
                raw=(LIMIT_SEM_PAIR, CXX_SEM_PAIR), alt=CXX_SEM_PAIR),
        CaseDef(key="sync_semaphore", title="Semaphore acquire+release, uncontended", binary="bench_sync", groups=g,
                mp=Ref("mp", "semaphore_acquire_release"),
                python=Ref("py", "semaphore", "acquire_release"), py_case="sync",
                raw=(LIMIT_SEM_PAIR, CXX_SEM_PAIR), max_over_raw=SYNC_MAX_OVER_SEM, alt=CXX_SEM_PAIR),
        # The raw pair only shows the scale: Event::set()+clear() is many semaphore calls.
        CaseDef(key="sync_event", title="Event set+clear", binary="bench_sync", groups=g,
                mp=Ref("mp", "event_set_clear"),
                python=Ref("py", "event", "set_clear"), py_case="sync",
                raw=(LIMIT_SEM_PAIR, CXX_SEM_PAIR), alt=CXX_SEM_PAIR, max_us=EVENT_MAX_US),
        CaseDef(key="sync_lock_create", title="Lock() create+destroy", binary="bench_sync", groups=g,
                mp=Ref("mp", "lock_create_destroy"),
                python=Ref("py", "lock", "create_destroy"), py_case="sync",
                raw=(LIMIT_SEM_OPEN, CXX_SEM_OPEN), alt=CXX_SEM_OPEN),
    ]
    # Two processes handing a token back and forth: the raw limit is limits.c's sem_t ping-pong
    # (two process-shared sem_t, same placement); reported, no target.
    for what, title in (("lock", "two Locks"), ("condition", "Condition(Lock) notify/wait_for")):
        for pl, suffix, pl_title in PLACEMENTS:
            limit = Ref("limits", "sem_pingpong", "rtt" + suffix, f"sem_t ping-pong, {pl_title} (limits.c)")
            own = Ref("mp", f"raw_sem_pingpong/{pl}", label=f"sem_t ping-pong, {pl_title} (bench_sync)")
            out.append(CaseDef(
                key=f"sync_pp_{what}_{pl}", title=f"Ping-pong between two processes, {title}, {pl_title}",
                binary="bench_sync", groups=("sync", "sync_pingpong"),
                mp=Ref("mp", f"{what}_pingpong/{pl}"), raw=(limit, own), alt=own))
    return out


# Shared memory (bench_shm; CPython's figures from py_baseline.py's shared_memory case and from
# bench/py_cases.py). Named segments of 1 MiB: the raw limit is limits.c's shm_open cycle, call for
# call; bench_shm times the same calls itself (alt). The handoffs: 256 MiB from the parent's
# private buffer to a fork child that reads every byte, GB/s (see bench_shm.cpp, py_cases.py).
SHM_MAX_OVER_RAW = 1.3    # issue 5: create and attach at most 1.3x the raw shm_open cycle
HANDOFF_CONSUME = (Ref("mp", "consume_256MiB", "bytes_per_second",
                       "the child's read of 256 MiB alone, byte sum, warm (bench_shm)"),
                   Ref("pyx", "handoff_256MiB", "consume_only",
                       "the CPython child's read of 256 MiB alone, bytes.find (memchr), warm (py_cases.py)"),
                   Ref("limits", "memcpy", "64MiB", "memcpy 64 MiB (limits.c)"))


def _shm_cases() -> list[CaseDef]:
    g = ("shm",)
    raw_create = Ref("mp", "raw_shm_create_map_unmap_unlink",
                     label="shm_open+ftruncate+mmap+munmap+close+shm_unlink 1 MiB (bench_shm)")
    raw_attach = Ref("mp", "raw_shm_attach_map_unmap", label="shm_open+fstat+mmap+munmap+close 1 MiB (bench_shm)")
    raw_sem_incr = Ref("mp", "raw_sem_increment_2proc",
                       label="sem_t wait+increment+post, 2 processes (bench_shm)")
    raw_shm_handoff = Ref("mp", "raw_handoff_256MiB/shm", "bytes_per_second",
                          "memcpy into a MAP_SHARED mapping + 1 byte on a socketpair, 256 MiB (bench_shm)")
    raw_sp_handoff = Ref("mp", "raw_handoff_256MiB/socketpair", "bytes_per_second",
                         "socketpair write()/read() into a reused buffer, 256 MiB (bench_shm)")
    return [
        CaseDef(key="shm_create", title="SharedMemory(create, 1 MiB) + close + unlink", binary="bench_shm", groups=g,
                mp=Ref("mp", "shm_create"),
                python=Ref("py", "shared_memory", "create_close_unlink_1MiB"), py_case="shared_memory",
                raw=(Ref("limits", "shm_open", "create_map_unmap_unlink_1MiB",
                         "shm_open+ftruncate+mmap+munmap+close+shm_unlink 1 MiB (limits.c)"), raw_create),
                max_over_raw=SHM_MAX_OVER_RAW, alt=raw_create,
                context=(Ref("mp", "shm_create_untracked", label="mp SharedMemory create+close+unlink, track=false"),
                         Ref("mp", "raw_shm_create_map_unmap_unlink/fresh_name",
                             label="the raw create cycle under a new random name each time (bench_shm)"))),
        CaseDef(key="shm_attach", title="SharedMemory(name) attach 1 MiB + close", binary="bench_shm", groups=g,
                mp=Ref("mp", "shm_attach"),
                python=Ref("py", "shared_memory", "attach_close_1MiB"), py_case="shared_memory",
                raw=(Ref("limits", "shm_open", "attach_map_unmap_1MiB",
                         "shm_open+fstat+mmap+munmap+close 1 MiB (limits.c)"), raw_attach),
                max_over_raw=SHM_MAX_OVER_RAW, alt=raw_attach),
        # Reported, no target: ns per increment, two fork children incrementing one Value at once.
        CaseDef(key="value_increment_2proc", title="Value<int> += 1 under get_lock(), 2 processes at once, per increment",
                binary="bench_shm", groups=g,
                mp=Ref("mp", "value_increment_2proc"),
                python=Ref("pyx", "value_increment_2proc", "with_get_lock"),
                raw=(raw_sem_incr,), alt=raw_sem_incr,
                context=(Ref("mp", "raw_mutex_increment_2proc",
                             label="pthread_mutex (pshared) lock+increment+unlock, 2 processes (bench_shm)"),)),
        # Reported, no target: GB/s of a 256 MiB handoff to a child that reads every byte.
        CaseDef(key="handoff_256MiB_shm", title="256 MiB to a child: memcpy into RawArray + notify, child sums",
                binary="bench_shm", groups=g, higher_is_better=True,
                mp=Ref("mp", "handoff_256MiB/shm", "bytes_per_second"),
                python=Ref("pyx", "handoff_256MiB", "shm"),
                raw=(raw_shm_handoff,), alt=raw_shm_handoff, context=HANDOFF_CONSUME),
        CaseDef(key="handoff_256MiB_pipe", title="256 MiB to a child: Pipe() send_bytes / recv_bytes, child sums",
                binary="bench_shm", groups=g, higher_is_better=True,
                mp=Ref("mp", "handoff_256MiB/pipe", "bytes_per_second"),
                python=Ref("pyx", "handoff_256MiB", "pipe"),
                raw=(raw_sp_handoff,), alt=raw_sp_handoff,
                context=(Ref("mp", "handoff_256MiB/pipe_into", "bytes_per_second",
                             "mp Pipe() send_bytes / recv_bytes_into a reused buffer, 256 MiB, child sums"),
                         Ref("limits", "socketpair_throughput", "1MiB_writes",
                             "socketpair stream, 1 MiB write()s, unpinned (limits.c)"))),
    ]


# Queues (bench_queue; CPython's figures from py_baseline.py's queue_throughput and bench/py_cases.py's
# queue_pingpong). Throughput: a producer child put()s N items, the parent get()s them, msg/s, the
# median of 3 runs as py_baseline.py's; the raw limit is limits.c's framed pipe stream of the same
# payload and placement ("1 write + 2 reads per msg", the framing CPython's Queue uses over its
# pipe), reported, no target. Latency: one item bounces over two queues; the raw limit is limits.c's
# pipe ping-pong (two pipe()s, 64 B, same placement).
QUEUE_INT_MIN_SPEEDUP = 20      # issue 6: small ints at least 20x CPython's Queue
QUEUE_4KIB_MIN_SPEEDUP = 5      # issue 6: 4 KiB payloads at least 5x
QUEUE_PP_MAX_OVER_RAW = 1.3     # issue 6: an idle put->get round trip at most 1.3x the raw pipe ping-pong


def _queue_cases() -> list[CaseDef]:
    out = []
    # key, bench_queue item, title, py_baseline metric, framed payload (limits.c and bench_queue), target
    streams = (("queue_int", "int", "Queue<int> producer child -> parent, small ints", "int_msgs", "8B",
                QUEUE_INT_MIN_SPEEDUP),
               ("queue_4KiB", "4KiB", "Queue<vector<byte>> producer child -> parent, 4 KiB", "4KiB_msgs", "4KiB",
                QUEUE_4KIB_MIN_SPEEDUP))
    for key, what, title, py_metric, payload, target in streams:
        for pl, suffix, pl_title in PLACEMENTS:
            limit = Ref("limits", "pipe_framed_msgs", f"{payload}_msgs{suffix}",
                        f"pipe, 4-byte length + {payload} per write(), 2 read()s per msg, {pl_title} (limits.c)")
            own = Ref("mp", f"raw_framed_pipe/{payload}/{pl}", "msg_per_s",
                      f"pipe, 4-byte length + {payload} per write(), 2 read()s per msg, {pl_title} (bench_queue)")
            out.append(CaseDef(
                key=f"{key}_{pl}", title=f"{title}, {pl_title}", binary="bench_queue",
                groups=("queue", "queue_throughput"), higher_is_better=True,
                mp=Ref("mp", f"queue_throughput/{what}/{pl}", "msg_per_s"),
                python=Ref("py", "queue_throughput", py_metric + suffix), py_case="queue_throughput",
                raw=(limit, own), alt=own, min_speedup_vs_python=target))
    for pl, suffix, pl_title in PLACEMENTS:
        limit = Ref("limits", "pipe_pingpong", "rtt" + suffix, f"pipe ping-pong 64 B, {pl_title} (limits.c)")
        own = Ref("mp", f"raw_pingpong/pipe64/{pl}", label=f"pipe ping-pong 64 B, {pl_title} (bench_queue)")
        out.append(CaseDef(
            key=f"queue_pp_{pl}", title=f"Queue<int> ping-pong over two queues, idle, {pl_title}",
            binary="bench_queue", groups=("queue", "queue_pingpong"),
            mp=Ref("mp", f"queue_pingpong/int/{pl}"),
            python=Ref("pyx", "queue_pingpong", "rtt" + suffix),
            raw=(limit, own), max_over_raw=QUEUE_PP_MAX_OVER_RAW, alt=own,
            context=(Ref("limits", "futex_pingpong", "rtt" + suffix,
                         f"futex ping-pong, {pl_title} (limits.c): a shared-memory handoff's floor"),)))
    return out


# Pool (bench_pool; CPython's figures from py_baseline.py's pool and pool_startup). Targets from
# issue 7: map with chunksize 1 at least 10x CPython, the default chunksize at least 3x; an
# apply_async round trip at most 2x the raw pipe ping-pong (limits.c, unpinned); Pool(2) start and
# close/join at most 2x two raw fork+_exit+waitpid (bench_pool measures that pair itself).
def _pool_cases() -> list[CaseDef]:
    g = ("pool",)
    fork2 = Ref("mp", "raw_fork2_exit_waitpid", label="2 x (fork+_exit) + 2 x waitpid (bench_pool)")
    return [
        CaseDef(key="pool_map_default", title="Pool(2).map(x*x, 200000 ints), default chunksize", binary="bench_pool",
                groups=g, higher_is_better=True, mp=Ref("mp", "pool_map/default_chunksize", "tasks_per_s"),
                python=Ref("py", "pool_map", "default_chunksize"), py_case="pool", min_speedup_vs_python=3),
        CaseDef(key="pool_map_chunksize1", title="Pool(2).map(x*x, 20000 ints), chunksize=1", binary="bench_pool",
                groups=g, higher_is_better=True, mp=Ref("mp", "pool_map/chunksize1", "tasks_per_s"),
                python=Ref("py", "pool_map", "chunksize1"), py_case="pool", min_speedup_vs_python=10),
        CaseDef(key="pool_apply_rtt", title="Pool(2) apply_async(x*x).get() round trip", binary="bench_pool",
                groups=g, mp=Ref("mp", "pool_apply_async/rtt"),
                python=Ref("py", "pool_apply_async", "rtt"), py_case="pool",
                raw=(Ref("limits", "pipe_pingpong", "rtt", "pipe ping-pong 64 B, unpinned (limits.c)"),),
                max_over_raw=2.0),
        CaseDef(key="pool_startup_close_join", title="Pool(2) start + close() + join()", binary="bench_pool",
                groups=g, mp=Ref("mp", "pool_startup/close_join"),
                python=Ref("py", "pool_startup", "pool2_close_join"), py_case="pool_startup",
                raw=(fork2,), max_over_raw=2.0),
        CaseDef(key="pool_startup_terminate", title="Pool(2) start + terminate (destructor / with-block)",
                binary="bench_pool", groups=g, mp=Ref("mp", "pool_startup/with_terminate"),
                python=Ref("py", "pool_startup", "pool2_with_terminate"), py_case="pool_startup",
                raw=(fork2,)),
    ]


CASES: list[CaseDef] = (PROCESS_CASES + _connection_cases() + _sync_cases() + _shm_cases() + _queue_cases() +
                        _pool_cases())

# Extra arguments a bench program takes in a --quick run.
QUICK_ARGS = {"bench_connection": ["--total_mib=128"],   # as py_baseline.py --quick: 128 MiB streams
              "bench_shm": ["--increments=200000"],      # a fifth, as py_cases.py --quick
              "bench_queue": ["--int_msgs=20000", "--bytes_msgs=10000"],  # as py_baseline.py --quick
              "bench_pool": ["--map_n=20000", "--map1_n=2000"]}

# Units of bench programs' user counters (other counters are shown without a unit).
MP_COUNTER_UNITS = {"msg_per_s": "msg/s", "tasks_per_s": "tasks/s"}


# ---- measurement ------------------------------------------------------------------------------

UNIT_TO_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


@dataclass
class Figure:
    value: float | None          # in `unit`; None if it was not measured or failed
    unit: str
    note: str = ""


@dataclass
class Results:
    figures: dict[tuple[str, str, str], Figure] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    raw_records: dict[str, list[dict]] = field(default_factory=lambda: {"mp": [], "py": [], "pyx": [], "limits": []})
    python_version: str = ""
    ran: set[str] = field(default_factory=set)   # the sources that produced figures

    def get(self, ref: Ref | None) -> Figure | None:
        return None if ref is None else self.figures.get(ref.key())


def log(msg: str) -> None:
    print(f"[run.py] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess | None:
    log("$ " + " ".join(cmd))
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        log(f"timed out after {timeout:.0f} s: {cmd[0]}")
    except OSError as e:
        log(f"cannot run {cmd[0]}: {e}")
    return None


def json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


# What Google Benchmark appends to a registered name: fixed iterations, repetitions, times, the clock.
GBENCH_SUFFIX = r"(/(iterations|repeats|min_time|min_warmup_time|threads):[^/]+)*(/(real_time|process_time|manual_time))?"


def bench_name(entry: dict) -> str:
    name = entry.get("run_name") or entry.get("name", "")
    return re.sub(GBENCH_SUFFIX + "$", "", name)


def find_binary(build_dir: Path, binary: str) -> Path | None:
    for cand in (build_dir / "bench" / binary, build_dir / binary,
                 build_dir / "bench" / "Release" / binary):
        if cand.is_file() and os.access(cand, os.X_OK):
            return cand
    return None


def run_mp(cases: list[CaseDef], build_dir: Path, args, res: Results) -> None:
    by_binary: dict[str, list[Ref]] = {}
    for c in cases:
        for r in c.refs():
            if r.source == "mp" and r not in by_binary.setdefault(c.binary, []):
                by_binary[c.binary].append(r)
    for binary, refs in by_binary.items():
        exe = find_binary(build_dir, binary)
        if exe is None:
            res.notes.append(f"{binary} not found under {build_dir} (build it: cmake --build {build_dir} "
                             f"--target {binary}; it needs libbenchmark-dev)")
            continue
        names = sorted({r.case for r in refs})
        cmd = [str(exe), "--benchmark_format=json",
               "--benchmark_filter=^(" + "|".join(re.escape(n) for n in names) + ")" + GBENCH_SUFFIX + "$",
               f"--benchmark_repetitions={args.repetitions}"]
        if args.quick:
            cmd.append("--benchmark_min_time=0.1")
            cmd.extend(QUICK_ARGS.get(binary, []))
        p = run(cmd, timeout=args.timeout)
        if p is None:
            res.notes.append(f"{binary} did not finish")
            continue
        text = p.stdout
        try:
            doc = json.loads(text[text.index("{"):]) if "{" in text else {}
        except json.JSONDecodeError as e:
            res.notes.append(f"{binary}: cannot parse its JSON output ({e}); exit code {p.returncode}")
            log(p.stderr[-2000:])
            continue
        if p.returncode != 0:
            res.notes.append(f"{binary} exited with {p.returncode}: {p.stderr.strip()[-500:]}")
        entries = doc.get("benchmarks", [])
        res.raw_records["mp"].extend(entries)
        res.ran.add("mp")
        for ref in refs:
            name = ref.case
            mine = [e for e in entries if bench_name(e) == name]
            errors = [e for e in mine if e.get("error_occurred")]
            medians = [e for e in mine if e.get("run_type") == "aggregate" and e.get("aggregate_name") == "median"]
            runs = [e for e in mine if e.get("run_type", "iteration") == "iteration" and not e.get("error_occurred")]
            unit = ("GB/s" if ref.metric == "bytes_per_second" else MP_COUNTER_UNITS.get(ref.metric, "")
                    if ref.metric else "us")
            if errors:
                msg = errors[0].get("error_message", "error")
                res.figures[ref.key()] = Figure(None, unit, f"error: {msg}")
            elif medians or runs:
                e = medians[0] if medians else runs[0]
                note = f"median of {len(runs)}" if medians else f"{e.get('iterations', '?')} iterations"
                if ref.metric == "bytes_per_second":
                    v = e.get("bytes_per_second")
                    res.figures[ref.key()] = Figure(None if v is None else v / 1e9, "GB/s", note)
                elif ref.metric:
                    res.figures[ref.key()] = Figure(e.get(ref.metric), MP_COUNTER_UNITS.get(ref.metric, ""), note)
                else:
                    res.figures[ref.key()] = Figure(e["real_time"], e.get("time_unit", "ns"), note)
            else:
                res.figures[ref.key()] = Figure(None, unit, "not run")


def record_lines(source: str, records: list[dict], res: Results) -> None:
    res.raw_records[source].extend(records)
    if records:
        res.ran.add(source)
    for r in records:
        fig = Figure(r.get("value"), r.get("unit", ""), r.get("skipped") or r.get("error") or "")
        res.figures[(source, r.get("case", ""), r.get("metric", ""))] = fig
        if r.get("metric") == "error":
            res.notes.append(f"{source}: case {r.get('case')} failed: {r.get('error')}")


def run_python(cases: list[CaseDef], baseline: Path, args, res: Results) -> None:
    py_cases = sorted({c.py_case for c in cases if c.python and c.py_case})
    if not py_cases:
        return
    cmd = [args.python, str(baseline / "py_baseline.py"), "--only", ",".join(py_cases)]
    if args.quick:
        cmd.append("--quick")
    p = run(cmd, timeout=args.timeout)
    if p is None:
        res.notes.append("py_baseline.py did not finish")
        return
    m = re.search(r"# python (\S+) .*start method (\S+)", p.stderr)
    if m:
        res.python_version = f"CPython {m.group(1)} (default start method {m.group(2)})"
    if p.returncode != 0:
        res.notes.append(f"py_baseline.py exited with {p.returncode}: {p.stderr.strip()[-500:]}")
    record_lines("py", json_lines(p.stdout), res)


def run_py_cases(cases: list[CaseDef], args, res: Results) -> None:
    """bench/py_cases.py: the CPython figures py_baseline.py lacks (Ref source "pyx")."""
    wanted = sorted({r.case for c in cases for r in c.refs() if r.source == "pyx"})
    if not wanted:
        return
    cmd = [args.python, str(REPO / "bench" / "py_cases.py"), "--only", ",".join(wanted)]
    if args.quick:
        cmd.append("--quick")
    p = run(cmd, timeout=args.timeout)
    if p is None:
        res.notes.append("py_cases.py did not finish")
        return
    m = re.search(r"# python (\S+) .*start method (\S+)", p.stderr)
    if m and not res.python_version:
        res.python_version = f"CPython {m.group(1)} (default start method {m.group(2)})"
    if p.returncode != 0:
        res.notes.append(f"py_cases.py exited with {p.returncode}: {p.stderr.strip()[-500:]}")
    record_lines("pyx", json_lines(p.stdout), res)


def run_limits(cases: list[CaseDef], baseline: Path, args, res: Results) -> None:
    if not any(r.source == "limits" for c in cases for r in c.refs()):
        return
    src = baseline / "limits.c"
    cc = shutil.which(args.cc)
    if cc is None:
        res.notes.append(f"{args.cc} not found: limits.c not run")
        return
    with tempfile.TemporaryDirectory(prefix="mp-bench-") as tmp:
        exe = Path(tmp) / "limits"
        p = run([cc, "-O2", "-o", str(exe), str(src), "-lpthread"], timeout=300)
        if p is None or p.returncode != 0:
            res.notes.append("limits.c did not compile" + (f": {p.stderr.strip()[-500:]}" if p else ""))
            return
        p = run([str(exe)] + (["--quick"] if args.quick else []), timeout=args.timeout)
        if p is None:
            res.notes.append("limits did not finish")
            return
        if p.returncode != 0:
            res.notes.append(f"limits exited with {p.returncode}: {p.stderr.strip()[-500:]}")
        record_lines("limits", json_lines(p.stdout), res)


# ---- the table --------------------------------------------------------------------------------

def in_us(fig: Figure | None) -> float | None:
    if fig is None or fig.value is None or fig.unit not in UNIT_TO_US:
        return None
    return fig.value * UNIT_TO_US[fig.unit]


def value_of(fig: Figure | None) -> float | None:
    """Comparable value: microseconds for times, the figure itself for rates."""
    if fig is None or fig.value is None:
        return None
    return in_us(fig) if fig.unit in UNIT_TO_US else fig.value


def fmt_fig(fig: Figure | None) -> str:
    if fig is None:
        return "-"
    if fig.value is None:
        return "error" if fig.note.startswith("error") else "-"
    us = in_us(fig)
    if us is None and fig.unit in ("msg/s", "tasks/s"):
        for scale, prefix in ((1e6, "M"), (1e3, "k")):
            if fig.value >= scale:
                return f"{fig.value / scale:.3g} {prefix}{fig.unit}"
        return f"{fig.value:.3g} {fig.unit}"
    if us is None:
        return f"{fig.value:,.4g} {fig.unit}"
    if us >= 1e6:
        return f"{us / 1e6:.3g} s"
    if us >= 1e3:
        return f"{us / 1e3:.3g} ms"
    if us >= 1:
        return f"{us:.3g} us"
    return f"{us * 1e3:.3g} ns"


def slowdown(a: float | None, b: float | None, higher_is_better: bool) -> float | None:
    """How many times worse a is than b (a/b for times, b/a for rates)."""
    if a is None or b is None or a <= 0 or b <= 0:
        return None
    return b / a if higher_is_better else a / b


def quotient(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a <= 0 or b <= 0:
        return None
    return a / b


def evaluate(c: CaseDef, res: Results) -> dict:
    mp_fig = res.get(c.mp)
    py_fig = res.get(c.python)
    raw_ref = next((r for r in c.raw if value_of(res.get(r)) is not None), c.raw[0] if c.raw else None)
    raw_fig = res.get(raw_ref)
    alt_fig = res.get(c.alt)
    mp_v, py_v, raw_v = value_of(mp_fig), value_of(py_fig), value_of(raw_fig)
    over_raw = quotient(mp_v, raw_v)                      # mp / raw, in the figures' own unit
    over_alt = quotient(mp_v, value_of(alt_fig))
    speedup = slowdown(py_v, mp_v, c.higher_is_better)   # how many times faster mp is than CPython
    checks = {}
    if c.max_over_raw is not None:
        checks["raw"] = None if over_raw is None else over_raw <= c.max_over_raw
    if c.min_of_raw is not None:
        checks["raw"] = None if over_raw is None else over_raw >= c.min_of_raw
    if c.min_speedup_vs_python is not None:
        checks["python"] = None if speedup is None else speedup >= c.min_speedup_vs_python
    if c.max_us is not None:
        mp_us = in_us(mp_fig)
        checks["abs"] = None if mp_us is None else mp_us <= c.max_us
    known = [v for v in checks.values() if v is not None]
    failed = mp_fig is not None and mp_fig.note.startswith("error")
    verdict = "ERROR" if failed else "MISS" if any(v is False for v in known) else ("PASS" if known and len(known) == len(checks) else
                                                             "PASS*" if known else "n/a")
    return {
        "case": c.key, "title": c.title,
        "mp": mp_fig, "python": py_fig, "raw": raw_fig, "raw_ref": raw_ref, "alt": alt_fig,
        "mp_over_raw": over_raw, "mp_over_alt": over_alt, "python_over_mp": speedup, "checks": checks,
        "verdict": verdict,
    }


def mark(ok: bool | None) -> str:
    return "?" if ok is None else ("PASS" if ok else "MISS")


def ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}x"


def print_table(cases: list[CaseDef], rows: list[dict], res: Results, have_baseline: bool) -> None:
    with_alt = any(c.alt for c in cases)
    with_abs = any(c.max_us is not None for c in cases)
    header = ["case", "mp"] + (["target", ""] if with_abs else []) + ["CPython", "raw limit", "mp/raw", "target", ""]
    if with_alt:
        header += ["raw (bench)", "mp/bench"]
    header += ["mp speedup", "target", "", "verdict"]
    body = []
    for c, r in zip(cases, rows):
        raw_target = (f"<= {c.max_over_raw:g}x" if c.max_over_raw else
                      f">= {c.min_of_raw:g}x" if c.min_of_raw else "")
        row = [c.key, fmt_fig(r["mp"])]
        if with_abs:
            row += [f"<= {fmt_fig(Figure(c.max_us, 'us'))}" if c.max_us is not None else "",
                    mark(r["checks"].get("abs")) if "abs" in r["checks"] else ""]
        row += [fmt_fig(r["python"]), fmt_fig(r["raw"]),
               ratio(r["mp_over_raw"]), raw_target,
               mark(r["checks"].get("raw")) if "raw" in r["checks"] else ""]
        if with_alt:
            row += [fmt_fig(r["alt"]) if c.alt else "", ratio(r["mp_over_alt"]) if c.alt else ""]
        row += [ratio(r["python_over_mp"]), f">= {c.min_speedup_vs_python:g}x" if c.min_speedup_vs_python else "",
                mark(r["checks"].get("python")) if "python" in r["checks"] else "",
                r["verdict"]]
        body.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    line = lambda cells: "  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w)  # noqa: E731
                                    for i, (x, w) in enumerate(zip(cells, widths))).rstrip()
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for b in body:
        print(line(b))
    print()
    print("mp/raw: mp's figure over the raw one (times: lower is better; rates: higher is better); "
          "mp speedup: how many times better than CPython")
    if with_abs:
        print("target after mp: a bound on mp's own figure")
    if with_alt:
        print("raw (bench): the raw system calls timed by the bench program itself, in the same run, no target")
        if any(c.alt and c.binary == "bench_connection" for c in cases):
            print("  connection ping-pong: the same 64 B exchange; streams: write()s and read()s of the message's "
                  "size into buffers of that size,\n  what memory allows at that footprint")
        if any(c.alt and c.binary == "bench_sync" for c in cases):
            print("  sync: as limits.c - one sem_wait+sem_post on a process-shared sem_t; sem_open+sem_unlink+"
                  "sem_close;\n  two process-shared sem_t ping-pong (fork(), same placement)")
        if any(c.alt and c.binary == "bench_shm" for c in cases):
            print("  shm: limits.c's shm_open cycles, call for call; two fork()ed children incrementing an int under "
                  "a\n  process-shared sem_t; 256 MiB handed over by memcpy into a MAP_SHARED mapping, or by "
                  "write()/read()\n  on a socketpair into a reused buffer (the child sums every byte)")
        if any(c.alt and c.binary == "bench_queue" for c in cases):
            print("  queue: limits.c's framed pipe stream (child -> parent, one write() of length + payload, two "
                  "read()s),\n  median of 3 runs timed from go (limits.c also times the fork); limits.c's two-pipe "
                  "64 B ping-pong")
    print("raw limit used:")
    by_label: dict[str, list[str]] = {}
    for c, r in zip(cases, rows):
        ref = r["raw_ref"]
        by_label.setdefault(ref.label if ref else "-", []).append(c.key)
    for label, keys in by_label.items():
        print(f"  {label}: {', '.join(keys)}")
    seen, ctx = set(), []
    for c in cases:
        for ref in c.context:
            if ref.key() not in seen and ref.source in res.ran:
                seen.add(ref.key())
                ctx.append(ref)
    if ctx:
        print("for comparison:")
        for ref in ctx:
            print(f"  {fmt_fig(res.get(ref)):>9}  {ref.label or ref.case}")
    errors = [(c.key, r["mp"].note) for c, r in zip(cases, rows) if r["mp"] is not None and r["mp"].note.startswith("error")]
    for key, note in errors:
        print(f"mp {key}: {note}")
    if res.python_version:
        print(f"python baseline: {res.python_version}")
    if not have_baseline:
        print("note: baseline folder not found: py_baseline.py's and limits.c's figures are not shown "
              "(set MP_BASELINE_DIR or --baseline-dir)")
    if any(r["verdict"] == "PASS*" for r in rows):
        print("PASS*: every target that could be checked was met; some figures are missing")
    for n in res.notes:
        print(f"note: {n}")


def to_json(fig: Figure | None) -> dict | None:
    if fig is None:
        return None
    return {"value": fig.value, "unit": fig.unit, "us": in_us(fig), "note": fig.note}


# ---- main -------------------------------------------------------------------------------------

def all_groups() -> list[str]:
    return sorted({g for c in CASES for g in c.groups})


def selects(token: str, c: CaseDef) -> bool:
    """--only: a case name, a group name or a shell-style pattern over case names."""
    return token == c.key or token in c.groups or fnmatch.fnmatchcase(c.key, token)


def default_build_dir() -> Path:
    for cand in (REPO / "build", Path.cwd() / "build"):
        if find_binary(cand, "bench_process"):
            return cand
    return REPO / "build"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="groups: " + ", ".join(all_groups()) +
                                 "\ncases: " + ", ".join(c.key for c in CASES))
    ap.add_argument("--build-dir", type=Path, default=None,
                    help="CMake build folder holding bench/<binary> (default: <repo>/build or ./build)")
    ap.add_argument("--baseline-dir", type=Path, default=None,
                    help="folder of py_baseline.py and limits.c (default: $MP_BASELINE_DIR or "
                         "<repo>/../shared/baseline)")
    ap.add_argument("--quick", action="store_true", help="short runs, passed on to the baselines")
    ap.add_argument("--only", default="",
                    help="comma-separated case names, groups (" + ", ".join(all_groups()) + ") or shell-style "
                         "patterns such as 'pp_*_same_cpu' (default: all)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    ap.add_argument("--repetitions", type=int, default=None,
                    help="Google Benchmark repetitions, the median is reported (default 3, quick 1)")
    ap.add_argument("--python", default=shutil.which("python3") or sys.executable,
                    help="the interpreter for py_baseline.py and bench/py_cases.py (default: python3)")
    ap.add_argument("--cc", default="gcc", help="C compiler for limits.c (default: gcc)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds allowed to each program")
    args = ap.parse_args()
    if args.repetitions is None:
        args.repetitions = 1 if args.quick else 3

    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in wanted if not any(selects(s, c) for c in CASES)]
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; groups: {', '.join(all_groups())}; "
                 f"cases: {', '.join(c.key for c in CASES)}")
    cases = [c for c in CASES if not wanted or any(selects(s, c) for s in wanted)]

    build_dir = (args.build_dir or default_build_dir()).resolve()
    baseline = args.baseline_dir or (Path(os.environ["MP_BASELINE_DIR"]) if os.environ.get("MP_BASELINE_DIR")
                                     else REPO.parent / "shared" / "baseline")
    baseline = baseline.resolve()
    have_baseline = (baseline / "py_baseline.py").is_file() and (baseline / "limits.c").is_file()

    res = Results()
    run_mp(cases, build_dir, args, res)
    if have_baseline:
        run_python(cases, baseline, args, res)
    run_py_cases(cases, args, res)   # in this repository: runs without the baseline folder too
    if have_baseline:
        run_limits(cases, baseline, args, res)
    else:
        log(f"baseline folder {baseline} not found: mp and py_cases.py figures only")

    rows = [evaluate(c, res) for c in cases]
    print(f"mp benchmarks ({'quick' if args.quick else 'full'} run; build {build_dir}; "
          f"baselines {baseline if have_baseline else 'missing'})")
    print()
    print_table(cases, rows, res, have_baseline)

    # A MISS is a finding, not a failure of the run; no figures or a failed benchmark is.
    status = 0 if "mp" in res.ran and not any(r["verdict"] == "ERROR" for r in rows) else 1
    if args.json:
        doc = {
            "quick": args.quick, "build_dir": str(build_dir),
            "baseline_dir": str(baseline) if have_baseline else None,
            "python": res.python_version,
            "cases": [{
                "case": r["case"], "title": r["title"],
                "mp": to_json(r["mp"]), "python": to_json(r["python"]), "raw": to_json(r["raw"]),
                "raw_source": r["raw_ref"].label if r["raw_ref"] else None,
                "mp_over_raw": r["mp_over_raw"], "target_mp_over_raw_max": c.max_over_raw,
                "target_mp_over_raw_min": c.min_of_raw,
                "alt": to_json(r["alt"]), "alt_source": c.alt.label if c.alt else None,
                "mp_over_alt": r["mp_over_alt"],
                "python_over_mp": r["python_over_mp"], "target_python_over_mp_min": c.min_speedup_vs_python,
                "target_mp_max_us": c.max_us,
                "checks": r["checks"], "verdict": r["verdict"],
            } for c, r in zip(cases, rows)],
            "context": {ref.label or ref.case: to_json(res.get(ref)) for c in cases for ref in c.context},
            "records": res.raw_records,
            "notes": res.notes,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        log(f"wrote {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
