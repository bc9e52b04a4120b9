#!/usr/bin/env python
"""Speed and memory of the offline replay, on one core.

    python benchmarks/bench_replay.py [--customers N] [--no-tracemalloc] [--keep DIR]

1. Generates two JSON Lines files with `streams.local.sample.generate`, written a line at a time
   (generation time is printed apart):
   - "1 year":  N customers (default 48,000: about a million events) over 2026;
   - "2 years": the same N customers over 2026 and again over 2027 (their second-year events
     get distinct ids), so about twice the events for the same customers.
2. Replays each file offline (`run_replay`, outputs written to a temp dir, no `--until`) in a
   fresh process pinned to one CPU, and prints events/s and that process's peak resident set
   size (imports + states + buffers): `VmHWM` from /proc, which exec resets, where there is one;
   `ru_maxrss` otherwise, which a child inherits from its parent across fork + exec, so the
   files are generated in a child process too, and this parent stays small.
   In the same process it then only reads and validates the file again: the floor under any
   replay of it, printed beside the replay's rate.
3. Unless `--no-tracemalloc`: replays each file again with tracemalloc on, in another fresh
   process, for the peak of Python allocations. tracemalloc slows the replay several times,
   so its run is separate and its rate is not the one reported.

The memory of the replay grows with customers, not events: the two peaks should be close.
It prints figures and never asserts on them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def generate(path: Path, customers: int, years: int) -> tuple[int, float]:
    """Write the events of `customers` customers over `years` years; returns (events, seconds)."""
    from streams.local.sample import SAMPLE_START
    from streams.local.sample import generate as journeys

    started, count = time.perf_counter(), 0
    with path.open("w") as out:
        for year in range(years):
            start = SAMPLE_START.replace(year=SAMPLE_START.year + year)
            span = (SAMPLE_START.replace(year=SAMPLE_START.year + year + 1) - start) / timedelta(days=1)
            for event in journeys(customers, seed=7 + year, start=start, span_days=span):
                if year:
                    event["event_id"] += f"-y{year + 1}"
                out.write(json.dumps(event, separators=(",", ":")) + "\n")
                count += 1
    return count, time.perf_counter() - started


def measure(path: Path, trace: bool) -> dict:
    """One replay in this process (run by `main` in a fresh, pinned child)."""
    import resource

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    from streams.core.model import load_model
    from streams.replay.run import run_replay
    from streams.replay.sources import iter_records

    if trace:
        import tracemalloc

        tracemalloc.start()
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as out:
        started, cpu = time.perf_counter(), time.process_time()
        report = run_replay(iter_records(path), load_model(), out_dir=out)  # the shipped rules and playbook
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    # The floor under any replay: reading and validating the lines, nothing else (same process, after).
    started = time.process_time()
    for _ in iter_records(path):
        pass
    read_cpu = time.process_time() - started
    figures = {
        "read_only_cpu_seconds": read_cpu,
        "records": report.records,
        "events": report.events,
        "customers": report.customers,
        "changes": report.changes,
        "actions": report.actions,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "maxrss_mb": peak_rss_mb(),
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if trace:
        figures["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    return figures


def peak_rss_mb() -> float:
    """This process's peak resident set size since its exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(*args: str) -> dict | list:
    """Run this script with `args` in a fresh process; its last output line is JSON."""
    done = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=48_000)
    parser.add_argument("--no-tracemalloc", action="store_true")
    parser.add_argument("--keep", type=Path, default=None, help="Write the generated files here and keep them.")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--years", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.trace)))
        return
    if args.generate:
        print(json.dumps(generate(args.generate, args.customers, args.years)))
        return

    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"each replay runs in a fresh process pinned to one CPU"
    )
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench-replay-"))
    workdir.mkdir(parents=True, exist_ok=True)
    files = {}
    try:
        for years in (1, 2):
            path = workdir / f"journeys-{args.customers}c-{years}y.jsonl"
            events, seconds = child("--generate", str(path), "--customers", str(args.customers), "--years", str(years))
            files[years] = path
            print(
                f"generated {events:,} events of {args.customers:,} customers over {years} year(s) "
                f"({path.stat().st_size / 2**20:,.0f} MiB) in {seconds:.1f}s"
            )
        print()
        rows = []
        for years, path in files.items():
            f = child("--measure", str(path))
            if not args.no_tracemalloc:
                f["traced_peak_mb"] = child("--measure", str(path), "--trace")["traced_peak_mb"]
            rows.append((years, f))
            print(
                f"{years} year(s): {f['events']:,} events, {f['customers']:,} customers, {f['changes']:,} changes, "
                f"{f['actions']:,} actions"
            )
            print(
                f"    {f['seconds']:.1f}s ({f['cpu_seconds']:.1f}s CPU): {f['events'] / f['seconds']:,.0f} events/s "
                f"({f['events'] / f['cpu_seconds']:,.0f} per CPU second); target 100,000 events/s"
            )
            print(
                f"    reading and validating the lines alone: {f['records'] / f['read_only_cpu_seconds']:,.0f} "
                f"records per CPU second ({f['read_only_cpu_seconds'] / f['cpu_seconds']:.0%} of the replay's CPU)"
            )
            print(
                f"    peak RSS {f['maxrss_mb']:,.0f} MiB"
                + (f"; tracemalloc peak {f['traced_peak_mb']:,.0f} MiB (separate run)" if "traced_peak_mb" in f else "")
            )
        (_, a), (_, b) = rows
        print()
        print(
            f"events ×{b['events'] / a['events']:.2f} for the same customers → peak RSS ×{b['maxrss_mb'] / a['maxrss_mb']:.2f}"
            + (f", tracemalloc peak ×{b['traced_peak_mb'] / a['traced_peak_mb']:.2f}" if "traced_peak_mb" in a else "")
        )
    finally:
        if args.keep is None:
            for path in files.values():
                path.unlink(missing_ok=True)
            workdir.rmdir()


if __name__ == "__main__":
    main()
