"""The command line: ``pipeline-nb run FILE`` (or ``python -m pipeline_nb run FILE``), and the
run journal's ``history``, ``show`` and ``compare`` (in ``_cli_journal``).

Streamed text goes to stdout, step headers, notes and the summary to stderr. Exit codes:
0 every step ok, 1 a step failed, 2 a bad spec or bad arguments, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from ._api import parse_vars
from ._cassette import MODES
from ._cli_journal import add_journal_commands, fail, id_line
from ._engine import RunOptions, estimate_spec, execute
from ._errors import PipelineError, PipelineSpecError, RunInterrupted
from ._interrupts import first_interrupt_only
from ._journal_db import journal_path
from ._loader import load_spec
from ._results import PipelineRun
from ._spec import PipelineSpec
from .streaming._events import RUN_END, Event
from .streaming._handlers import ConsoleHandler


DESCRIPTION = "Run YAML LLM pipelines from a terminal: streamed text to stdout, notes and a summary to stderr."
EPILOG = "exit codes: 0 every step ok, 1 a step failed, 2 a bad spec or bad arguments, 130 interrupted"


def program_name(argv0: str | None = None) -> str:
    """How the user started us: ``pipeline-nb`` (the installed script) or ``python -m pipeline_nb``."""
    name = os.path.basename(argv0 if argv0 is not None else sys.argv[0])
    return "python -m pipeline_nb" if name in ("__main__.py", "") else name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=program_name(), description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a pipeline file", description=DESCRIPTION, epilog=EPILOG)
    run.add_argument("file", help="pipeline YAML file")
    stream = run.add_mutually_exclusive_group()
    stream.add_argument("--stream", dest="stream", action="store_true", default=None, help="stream every llm step")
    stream.add_argument("--no-stream", dest="stream", action="store_false", help="stream no step")
    run.add_argument("--provider", help="use this provider for every step (claude, mock)")
    run.add_argument("--model", help="use this model for every step")
    run.add_argument("--var", action="append", default=[], metavar="KEY=VALUE", help="template variable (repeatable)")
    run.add_argument("--cassette", metavar="PATH", help="record replies to / replay them from this JSON Lines file")
    run.add_argument("--cassette-mode", choices=MODES, help="record, replay, auto (the default with a cassette) or off")
    run.add_argument("--cassette-pace", action="store_true", help="record the pace of streamed replies, and replay at it instead of at full speed")
    run.add_argument("--journal", metavar="PATH|off", help="the run journal to record this run in, or off "
                     "(default: defaults.journal, then $PIPELINE_NB_JOURNAL, then the per-user one)")
    run.add_argument("--resume", nargs="?", const=True, metavar="RUN_ID",
                     help="reuse every reply of an earlier run whose request is unchanged; "
                          "no RUN_ID: the journal's last run of this pipeline's name")
    run.add_argument("--rerun", action="append", default=[], metavar="STEP",
                     help="call STEP (and the steps that read it) again, reusing the rest of the earlier run "
                          "(repeatable; resumes the last run unless --resume RUN_ID names one)")
    run.add_argument("--estimate", action="store_true",
                     help="call no model: print each step's calls, input tokens (counted by the API) and cost range")
    run.add_argument("--check", action="store_true",
                     help="exit 1 when an expectation (expect:) fails, as when a step does")
    run.add_argument("--max-cost", type=float, metavar="USD",
                     help="the run's budget: a call that could pass it is not started (over defaults.max_cost)")
    run.set_defaults(parser=run, handle=run_command)
    add_journal_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handle(args)


def run_command(args: argparse.Namespace) -> int:
    """``run FILE``: the run streams to the terminal, then its summary and its id."""
    try:
        overrides = parse_vars(args.var)
    except ValueError as exc:
        args.parser.error(str(exc))
    with first_interrupt_only():  # Ctrl-C pressed again while the run stops still ends with 130
        try:
            spec = load_spec(args.file, source_name=args.file)
            unknown = [step for step in args.rerun if step not in {s.id for s in spec.all_steps()}]
            if unknown:
                steps = ", ".join(s.id for s in spec.all_steps())
                return fail(f"--rerun {unknown[0]!r}: pipeline {spec.name!r} has no such step; its steps: {steps}")
            resume = args.resume if args.resume is not None else (True if args.rerun else None)
            summarised = SummarisedWarnings()
            options = RunOptions(vars=overrides, provider=args.provider, model=args.model,
                                 stream=args.stream, handlers=[ConsoleHandler(summary=True), summarised],
                                 cassette=args.cassette, cassette_mode=args.cassette_mode,
                                 cassette_pace=args.cassette_pace, journal=args.journal,
                                 origin=str(Path(args.file).resolve()), resume=resume,
                                 rerun=tuple(args.rerun), max_cost=args.max_cost)
            if args.estimate:
                print(estimate_spec(spec, options).describe())
                return 0
            run = execute(spec, options)
        except PipelineSpecError as exc:
            return fail(str(exc))
        except RunInterrupted as exc:  # the console printed the summary as the run ended
            print(summarised.late(exc.run) + run_line(exc.run, spec, args.journal), file=sys.stderr)
            return 130
        except PipelineError as exc:  # e.g. a JournalError: no run to resume
            return fail(str(exc))
    print(summarised.late(run) + run_line(run, spec, args.journal), file=sys.stderr)
    if args.check and run.checks.failed:
        print(f"{run.checks.summary()}: failing (--check)", file=sys.stderr)
        return 1
    return 0 if run.ok else 1  # a failed step or handler fails the run


class SummarisedWarnings:
    """Notes the warnings the console's summary printed, so those that came later (the journal's,
    known only once its writer has finished) are printed after it."""

    def __init__(self) -> None:
        self.shown: list[str] = []

    def __call__(self, event: Event) -> None:
        if event.kind == RUN_END:
            self.shown = list(event.data.warnings)

    def late(self, run: PipelineRun) -> str:
        return "".join(f"  warning: {w}\n" for w in run.warnings if w not in self.shown)


def run_line(run: PipelineRun, spec: PipelineSpec, journal: str | None) -> str:
    """The summary's last line: the run's id, the run it resumed, and whether the journal is off."""
    off = journal_path(journal, spec) is None
    return id_line(run) + (" · not journaled (the journal is off)" if off else "")
