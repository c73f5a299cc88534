#!/usr/bin/env python3
"""More CPython figures for mp's benchmarks, beside ../shared/baseline/py_baseline.py (stdlib only).

Prints one JSON object per line, as py_baseline.py: {"case", "metric", "value", "unit", ...extra}.
bench/run.py runs it as the Ref source "pyx", in the same invocation as the other baselines.
    python3 bench/py_cases.py                     # full size
    python3 bench/py_cases.py --quick             # short run
    python3 bench/py_cases.py --only value_increment_2proc
Conventions as py_baseline.py's: GB = 1e9 bytes; a figure is the median of several runs. Every
child is a fork child (as bench_shm's: mp.get_context("fork"), whatever the default start
method), and every wait has a timeout, so a dead child fails the case instead of hanging it.

Cases (the emitted case name is the --only name):
  value_increment_2proc  with_get_lock (ns per increment): Value('i', 0); two processes each do
        N times `with v.get_lock(): v.value += 1` (the getter and the setter take the RLock again,
        recursively). Both children are started and report ready first; the clock starts when the
        parent sets the go Event and stops at the later child's last increment (perf_counter is
        CLOCK_MONOTONIC, one clock for all processes); time / (2 N). Median of 3 batches.
  handoff_256MiB  GB/s of handing 256 MiB to a child that reads every byte, timed from the start
        of the handoff in the parent to the child's answer back in the parent. The data starts in
        the parent's private bytes object (pattern i % 251: no byte is 0xFF); the child is started
        and warmed up with one untimed handoff first.
        shm           SharedMemory(create=True, size=256 MiB) inherited by the child: the parent
                      copies its bytes in (shm.buf[:] = src, one memcpy) and sends b"go" over a
                      Pipe(); the child scans the block for the byte 0xFF (absent, so it reads
                      every byte: mmap.find, a memchr over the mapping, at memory speed, no copy;
                      the mmap is shm.buf.obj) and sends the result back.
        pipe          Pipe(): parent send_bytes(src); child recv_bytes() (a new bytes object), the
                      same scan (bytes.find), the result back.
        consume_only  the scan alone, over the warm private bytes in this process: the ceiling.
        (Why a scan and not a sum: a pure-Python sum of 256 MiB runs at tens of MB/s and would
        hide the handoff; a stride of 4096 touches one byte per page, not every byte; and
        bytes(buf).count(0) copies the block first. memchr reads every byte at memory bandwidth,
        as bench_shm's C++ child does with its byte sum; compare consume_only with bench_shm's
        consume_256MiB.)
  queue_pingpong  rtt, rtt_same_cpu, rtt_cross_cpu (us per round trip): one small int bounces
        between this process and a fork child over two Queue()s (the parent put()s on `ping` and
        get()s from `pong`, the child the other way round), as py_baseline.py's ping-pongs: the
        child pins itself (placements as py_baseline.py's: none, both on CPU 0, parent on CPU 0 and
        child on CPU 1), max(200, n // 20) round trips of warm-up, then 5 batches of n // 5; the
        median batch mean. Every get() has a timeout (Queue.get(timeout=...)).
"""
import json
import multiprocessing as mp
import os
import signal
import sys
import time

perf = time.perf_counter
QUICK = False
TIMEOUT_S = 60               # any single wait
CASE_TIMEOUT_S = 300         # a hung case is abandoned, the script goes on
HANDOFF = 256 << 20


def n_(full, quick):
    return quick if QUICK else full


def emit(case, metric, value, unit, **extra):
    rec = {"case": case, "metric": metric,
           "value": None if value is None else float(f"{value:.4g}"),
           "unit": unit}
    rec.update(extra)
    print(json.dumps(rec), flush=True)


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def _stop(procs):
    """Kill what is still running, reap everything."""
    for p in procs:
        if p.is_alive():
            p.kill()
        p.join(TIMEOUT_S)


# ---- value_increment_2proc

def _incr_child(v, n, ready, go, ends, idx):
    ready.release()
    if not go.wait(TIMEOUT_S):
        os._exit(3)
    for _ in range(n):
        with v.get_lock():
            v.value += 1
    ends[idx] = perf()


def case_value_increment_2proc():
    ctx = mp.get_context("fork")
    n = n_(100000, 20000)
    v = ctx.Value("i", 0)
    ends = ctx.RawArray("d", 2)
    per = []
    for _ in range(3):
        v.value = 0
        ready, go = ctx.Semaphore(0), ctx.Event()
        procs = [ctx.Process(target=_incr_child, args=(v, n, ready, go, ends, i), daemon=True) for i in range(2)]
        try:
            for p in procs:
                p.start()
            for _ in procs:
                if not ready.acquire(timeout=TIMEOUT_S):
                    raise TimeoutError("the children did not start")
            t0 = perf()
            go.set()
            for p in procs:
                p.join(TIMEOUT_S)
                if p.exitcode != 0:
                    raise RuntimeError(f"child exit code {p.exitcode}")
        finally:
            _stop(procs)
        if v.value != 2 * n:
            raise RuntimeError(f"the counter is {v.value}, not {2 * n}")
        per.append((max(ends) - t0) / (2 * n))
    emit("value_increment_2proc", "with_get_lock", median(per) * 1e9, "ns", n=n, procs=2)


# ---- handoff_256MiB

def _pattern(size):
    block = bytes(range(251))
    return (block * (size // len(block) + 1))[:size]


def _shm_consumer(shm, conn):
    scan = shm.buf.obj.find          # the mmap under shm.buf
    while conn.poll(TIMEOUT_S):
        if not conn.recv_bytes():    # b"" ends it
            return
        conn.send_bytes(str(scan(b"\xff")).encode())
    os._exit(3)                      # no request within the timeout


def _pipe_consumer(conn):
    while conn.poll(TIMEOUT_S):
        m = conn.recv_bytes()
        if not m:
            return
        conn.send_bytes(str(m.find(b"\xff")).encode())
    os._exit(3)


def _answer(conn):
    if not conn.poll(TIMEOUT_S):
        raise TimeoutError("no answer from the child")
    r = conn.recv_bytes()
    if r != b"-1":
        raise RuntimeError(f"unexpected answer {r!r}")


def _rates(once, reps):
    once()                           # warm-up: the child's page tables, the buffers
    times = []
    for _ in range(reps):
        t0 = perf()
        once()
        times.append(perf() - t0)
    return HANDOFF / median(times) / 1e9


def case_handoff_256MiB():
    from multiprocessing import shared_memory as sm
    ctx = mp.get_context("fork")
    reps = n_(5, 3)
    src = _pattern(HANDOFF)

    t0 = perf()                      # the scan alone (memchr over warm private bytes)
    for _ in range(reps):
        if src.find(b"\xff") != -1:
            raise RuntimeError("0xFF in the pattern")
    emit("handoff_256MiB", "consume_only", HANDOFF * reps / (perf() - t0) / 1e9, "GB/s", reps=reps)

    shm = sm.SharedMemory(create=True, size=HANDOFF)
    try:
        a, b = ctx.Pipe()
        p = ctx.Process(target=_shm_consumer, args=(shm, b), daemon=True)
        try:
            p.start()
            b.close()

            def once():
                shm.buf[:HANDOFF] = src   # the parent's bytes into the block: one memcpy
                a.send_bytes(b"go")
                _answer(a)
            rate = _rates(once, reps)
            a.send_bytes(b"")
            p.join(TIMEOUT_S)
        finally:
            _stop([p])
        emit("handoff_256MiB", "shm", rate, "GB/s", reps=reps, bytes=HANDOFF)
    finally:
        shm.close()
        shm.unlink()

    a, b = ctx.Pipe()
    p = ctx.Process(target=_pipe_consumer, args=(b,), daemon=True)
    try:
        p.start()
        b.close()

        def once():
            a.send_bytes(src)
            _answer(a)
        rate = _rates(once, reps)
        a.send_bytes(b"")
        p.join(TIMEOUT_S)
    finally:
        _stop([p])
    emit("handoff_256MiB", "pipe", rate, "GB/s", reps=reps, bytes=HANDOFF)


# ---- queue_pingpong

PLACEMENTS = {"": None, "_same_cpu": (0, 0), "_cross_cpu": (0, 1)}  # (parent, child), as py_baseline.py


def _queue_echo(ping, pong, cpu):
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    while True:
        m = ping.get(timeout=TIMEOUT_S)
        if m is None:
            return
        pong.put(m)


def _queue_pingpong_once(n, cpu):
    """seconds per round trip"""
    ctx = mp.get_context("fork")
    ping, pong = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=_queue_echo, args=(ping, pong, cpu), daemon=True)
    try:
        p.start()
        i = 0
        for _ in range(max(200, n // 20)):   # warm-up
            ping.put(i & 255)
            pong.get(timeout=TIMEOUT_S)
            i += 1
        batch = n // 5
        means = []
        for _ in range(5):
            t0 = perf()
            for _ in range(batch):
                ping.put(i & 255)
                pong.get(timeout=TIMEOUT_S)
                i += 1
            means.append((perf() - t0) / batch)
        ping.put(None)
        p.join(TIMEOUT_S)
        if p.exitcode != 0:
            raise RuntimeError(f"child exit code {p.exitcode}")
    finally:
        _stop([p])
    return median(means)


def case_queue_pingpong():
    n = n_(20000, 4000)
    allowed = os.sched_getaffinity(0)
    for suffix, cpus in PLACEMENTS.items():
        if cpus and not set(cpus) <= allowed:
            emit("queue_pingpong", "rtt" + suffix, None, "us", skipped="CPUs not available")
            continue
        try:
            if cpus:
                os.sched_setaffinity(0, {cpus[0]})
            rtt = _queue_pingpong_once(n, cpus and cpus[1])
        finally:
            os.sched_setaffinity(0, allowed)
        emit("queue_pingpong", "rtt" + suffix, rtt * 1e6, "us", n=n)


CASES = {name[5:]: fn for name, fn in list(globals().items()) if name.startswith("case_")}


def _on_alarm(signum, frame):
    raise TimeoutError(f"case exceeded {CASE_TIMEOUT_S}s")


def main():
    import argparse
    global QUICK
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run")
    ap.add_argument("--only", default="", help="comma-separated case names: " + ",".join(CASES))
    args = ap.parse_args()
    QUICK = args.quick
    chosen = [c for c in args.only.split(",") if c] or list(CASES)
    unknown = [c for c in chosen if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; cases: {', '.join(CASES)}")
    print(f"# python {sys.version.split()[0]} pid {os.getpid()} start method "
          f"{mp.get_start_method()} quick={QUICK}", file=sys.stderr)
    signal.signal(signal.SIGALRM, _on_alarm)
    t_all = perf()
    for name in chosen:
        signal.alarm(CASE_TIMEOUT_S)
        try:
            CASES[name]()
        except Exception as e:           # report and go on with the next case
            emit(name, "error", None, "", error=f"{type(e).__name__}: {e}")
        finally:
            signal.alarm(0)
    print(f"# total {perf() - t_all:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
