"""The command line, ``pipeline-nb run FILE`` (or ``python -m pipeline_nb run FILE``).

Streamed text goes to stdout, step headers, notes and the summary to stderr. Exit codes:
0 every step ok, 1 a step failed, 2 a bad spec or bad arguments, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import __version__
from ._api import parse_vars
from ._cassette import MODES
from ._engine import RunOptions, execute
from ._errors import PipelineError, PipelineSpecError, RunInterrupted
from ._interrupts import first_interrupt_only
from ._loader import load_spec
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
    run.set_defaults(parser=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        overrides = parse_vars(args.var)
    except ValueError as exc:
        args.parser.error(str(exc))
    with first_interrupt_only():  # Ctrl-C pressed again while the run stops still ends with 130
        try:
            spec = load_spec(args.file, source_name=args.file)
            run = execute(spec, RunOptions(vars=overrides, provider=args.provider, model=args.model,
                                           stream=args.stream, handlers=[ConsoleHandler(summary=True)],
                                           cassette=args.cassette, cassette_mode=args.cassette_mode,
                                           cassette_pace=args.cassette_pace))
        except PipelineSpecError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except RunInterrupted:  # the console printed the summary as the run ended
            return 130
        except PipelineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0 if run.ok else 1  # a failed step or handler fails the run
