"""The run journal on the command line: ``history`` (and ``history --prune --before DATE``),
``show RUN_ID`` and ``compare RUN_A RUN_B``. A journal that cannot be read, a run it does not
hold, or a bad date is one ``error:`` line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from ._compare import compare
from ._journal_read import JournalError, history, load_run, prune_journal
from ._render import run_text
from ._results import PipelineRun

HISTORY_LIMIT = 20
JOURNAL_HELP = "the run journal to read (default: $PIPELINE_NB_JOURNAL, then the per-user one)"


def add_journal_commands(commands: Any) -> None:
    """Add ``history``, ``show`` and ``compare`` to the CLI's subcommands."""
    listing = commands.add_parser("history", help="list the journal's runs, newest first (or prune old ones)",
                                  description="List the runs in the run journal, newest first, one line each: "
                                              "id, name, status, steps, tokens, cost, duration, start.")
    listing.add_argument("--name", help="only runs of the pipeline with this name")
    listing.add_argument("--status", help="only runs that ended with this status (ok, error, interrupted, ...)")
    listing.add_argument("--limit", type=int, metavar="N", help=f"at most N runs (default {HISTORY_LIMIT})")
    listing.add_argument("--prune", action="store_true", help="delete the runs started before --before instead")
    listing.add_argument("--before", metavar="DATE", help="with --prune: a date (2026-11-01) or ISO time")
    listing.add_argument("--journal", metavar="PATH", help=JOURNAL_HELP)
    listing.set_defaults(handle=history_command)
    show = commands.add_parser("show", help="print a run from the journal as its summary",
                               description="Print a journaled run: its line, then a line per step with the "
                                           "start of its text, and errors and notes under their steps.")
    show.add_argument("run_id", metavar="RUN_ID", help="the run's id, as `run` and `history` print it")
    show.add_argument("--journal", metavar="PATH", help=JOURNAL_HELP)
    show.set_defaults(handle=show_command)
    side_by_side = commands.add_parser("compare", help="print two runs from the journal side by side",
                                       description="Compare two journaled runs: their status, pass rate, cost and "
                                                   "duration, then per step (per matrix combination) both statuses, "
                                                   "checks, cost, latency, tokens and a diff of the text.")
    side_by_side.add_argument("run_a", metavar="RUN_A", help="the first run's id (A, the one compared against)")
    side_by_side.add_argument("run_b", metavar="RUN_B", help="the second run's id (B)")
    side_by_side.add_argument("--journal", metavar="PATH", help=JOURNAL_HELP)
    side_by_side.set_defaults(handle=compare_command)


def fail(message: str) -> int:
    """A user's mistake: one ``error:`` line on stderr, exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def history_command(args: argparse.Namespace) -> int:
    if args.prune:
        return prune_command(args)
    if args.before is not None:
        return fail("--before goes with --prune: `history --prune --before DATE` deletes older runs")
    limit = HISTORY_LIMIT if args.limit is None else args.limit
    try:
        runs = history(name=args.name, limit=limit, status=args.status, journal=args.journal)
    except JournalError as exc:
        return fail(str(exc))
    print(runs)
    return 0


def prune_command(args: argparse.Namespace) -> int:
    """``history --prune --before DATE``: delete the older runs, say how many went."""
    if args.before is None:
        return fail("--prune needs --before DATE (e.g. --before 2026-11-01): the runs started before it are deleted")
    chosen = [flag for flag, value in (("--name", args.name), ("--status", args.status), ("--limit", args.limit))
              if value is not None]
    if chosen:
        return fail(f"--prune deletes by date only; drop {chosen[0]}")
    try:
        before = parse_when(args.before)
    except ValueError:
        return fail(f"--before expects a date (2026-11-01) or an ISO time (2026-11-01T09:30), got {args.before!r}")
    try:
        removed = prune_journal(before, journal=args.journal)
    except JournalError as exc:
        return fail(str(exc))
    print(f"pruned {removed} run{'' if removed == 1 else 's'} started before {before:%Y-%m-%d %H:%M:%S}")
    return 0


def parse_when(text: str) -> dt.datetime:
    """A date (midnight, local time) or an ISO time; ValueError for anything else."""
    return dt.datetime.fromisoformat(text.strip())


def show_command(args: argparse.Namespace) -> int:
    try:
        run = load_run(args.run_id, journal=args.journal)
    except JournalError as exc:
        return fail(str(exc))
    print(run_text(run))
    print(id_line(run))
    return 0


def compare_command(args: argparse.Namespace) -> int:
    try:
        comparison = compare(args.run_a, args.run_b, journal=args.journal)
    except JournalError as exc:
        return fail(str(exc))
    print(comparison)
    return 0


def id_line(run: PipelineRun) -> str:
    """``run 20261129-192038-93113b`` (what ``show`` and ``--resume`` take), and the run it resumed."""
    return f"run {run.id}" + (f" · resumed from {run.reused_from}" if run.reused_from else "")
