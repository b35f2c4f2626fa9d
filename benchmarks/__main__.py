"""``python -m benchmarks [NAME ...] [--repeat N] [--quick]``: run the benchmarks, print the figures.

NAME is any of traffic, overhead, fanout, streams, ratelimit, startup, memory, cassette (default: all, in that order).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import tempfile
import time

from ._report import table

NAMES = ("traffic", "overhead", "fanout", "streams", "ratelimit", "startup", "memory", "cassette")


def main(argv: list[str] | None = None) -> int:
    # runs journal as a user's do (the journal is on by default), to a file of the benchmarks' own
    os.environ.setdefault("PIPELINE_NB_JOURNAL", os.path.join(tempfile.mkdtemp(prefix="pnb-bench-"), "journal.sqlite"))
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"which benchmarks ({', '.join(NAMES)}); default: all")
    parser.add_argument("--repeat", type=int, default=5, help="repeats of each timed pair (default 5)")
    parser.add_argument("--quick", action="store_true", help="fewer, smaller runs: a smoke test")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(NAMES)}")
    names = args.names or list(NAMES)

    print(f"pipeline_nb benchmarks on {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)
    started = time.monotonic()
    figures = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        figures += module.run(repeat=2 if args.quick else args.repeat, quick=args.quick)
        print(flush=True)
    print(table(figures))
    if args.quick:
        print("\n--quick: smaller sizes and fewer runs, a smoke test; the verdicts above are not the figures")
    print(f"\n({time.monotonic() - started:.0f} s; load average now {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
