"""``%%pipeline``: parse the options, run the engine, bind and show the results; and the
``%pipeline history | show | rerun`` line magic over the run journal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from html import escape
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Integer, Unicode

from ._api import parse_vars, raise_for_checks, raise_for_status
from ._check_results import CheckList, verdict_html, verdict_text
from ._compare import compare
from ._cassette import MODES
from ._engine import estimate_spec, execute
from ._run_options import DEFAULT_MAX_TOKENS, DEFAULT_MODEL, DEFAULT_PROVIDER, RunOptions
from ._errors import RunInterrupted, StepError
from ._interrupts import first_interrupt_only
from ._journal_read import History, history, load_run
from ._render import run_html, run_text
from ._results import PipelineRun
from ._loader import load_spec
from ._spec import PipelineSpec
from .streaming._handlers import ConsoleHandler, Handler

LAST_RUN = "_pipeline"
NOTEBOOK_PATH_NAMES = ("__vsc_ipynb_file__", "__session__")
"""Where a kernel keeps its notebook's path: VS Code's name, then Jupyter's (JPY_SESSION_NAME)."""
HISTORY_LIMIT = 20
DISPLAYS = ("run", "checks", "none")
"""What ``%%pipeline --display`` may show when the run ends."""


@magics_class
class PipelineMagics(Magics):
    """The ``%%pipeline`` cell magic and the ``%pipeline`` line magic. Defaults are settable with
    ``%config PipelineMagics.<trait>``."""

    provider = Unicode(DEFAULT_PROVIDER, help="Provider for steps that set none (claude, mock).").tag(config=True)
    model = Unicode(DEFAULT_MODEL, help="Model for steps that set none.").tag(config=True)
    max_tokens = Integer(DEFAULT_MAX_TOKENS, help="max_tokens for steps that set none.").tag(config=True)
    journal = Unicode(None, allow_none=True, help="The run journal: a path, or 'off'. None: the pipeline's "
                      "defaults.journal, then $PIPELINE_NB_JOURNAL, then the per-user one.").tag(config=True)

    @magic_arguments()
    @argument("name", nargs="?", help="Kernel name to bind the run (a PipelineRun) to.")
    @argument("--provider", help="Use this provider for every step (claude, mock).")
    @argument("--model", help="Use this model for every step.")
    @argument("--stream", dest="stream", action="store_true", default=None, help="Stream every llm step.")
    @argument("--no-stream", dest="stream", action="store_false", help="Do not stream, whatever the steps say.")
    @argument("--var", action="append", default=[], metavar="KEY=VALUE",
              help="Template variable; overrides vars: and the kernel namespace. Repeatable.")
    @argument("--cassette", metavar="PATH", help="Record replies to / replay them from this JSON Lines file.")
    @argument("--cassette-mode", choices=MODES, help="record, replay, auto (the default with a cassette) or off.")
    @argument("--cassette-pace", action="store_true", help="Record the pace of streamed replies, and replay at it instead of at full speed.")
    @argument("--journal", metavar="PATH|off", help="Record the run in this journal, or nowhere (off).")
    @argument("--resume", nargs="?", const=True, metavar="RUN_ID",
              help="Reuse every reply of an earlier run whose request is unchanged. No RUN_ID: the run bound "
                   "to NAME, else the journal's last run of this pipeline's name.")
    @argument("--rerun", action="append", default=[], metavar="STEP",
              help="Call STEP (and the steps that read it) again, reusing the rest of the earlier run, "
                   "as --resume finds it. Repeatable.")
    @argument("--estimate", action="store_true",
              help="Call no model: show each step's calls, input tokens (counted by the API) and cost range, "
                   "and bind the Estimate to NAME.")
    @argument("--max-cost", type=float, metavar="USD",
              help="The run's budget in USD: a call that could pass it is not started (over defaults.max_cost).")
    @argument("--check", action="store_true",
              help="Fail the cell when an expectation (expect:) fails, after binding the run.")
    @argument("--display", choices=DISPLAYS, default="run",
              help="What the cell shows when the run ends: run (every step, the default), checks (only the "
                   "verdict table: stable when the verdicts are, for nbval against a live model) or none.")
    @cell_magic
    def pipeline(self, line: str, cell: str) -> None:
        """Run the YAML pipeline in the cell body, streaming into a live view.

        The run is bound to NAME (if given; it also names a spec without ``name:``) and to
        ``_pipeline``; steps with ``save_as``
        also bind their output. Templates see --var values, then ``vars:``, then the
        kernel namespace, and ``steps.<id>.text`` of earlier steps. Line numbers in
        errors count the ``%%pipeline`` line as line 1. Every run is recorded in the run
        journal; ``%pipeline history`` lists them.
        """
        args = parse_argstring(self.pipeline, line)
        if args.name is not None and not args.name.isidentifier():
            raise UsageError(f"%%pipeline NAME must be a Python name, got {args.name!r}")
        try:
            overrides = parse_vars(args.var)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        spec = self._spec(cell, args.name)
        check_steps(spec, args.rerun, "%%pipeline --rerun")
        options = RunOptions(
            vars=overrides,
            namespace=self.shell.user_ns,
            provider=args.provider,
            model=args.model,
            stream=args.stream,
            default_provider=self.provider,
            default_model=self.model,
            default_max_tokens=self.max_tokens,
            cassette=args.cassette,
            cassette_mode=args.cassette_mode,
            cassette_pace=args.cassette_pace,
            journal=args.journal or self.journal,
            origin=self._origin,
            resume=self._earlier(args.name, args.resume, args.rerun),
            rerun=tuple(args.rerun),
            max_cost=args.max_cost,
        )
        if args.estimate:
            estimate = estimate_spec(spec, replace(options, resume=None))
            if args.name:
                self.shell.user_ns[args.name] = estimate
            print(estimate.describe())
            return
        with first_interrupt_only():  # more interrupts while it stops must not cut the binding short
            try:
                run = self._execute(cell, args.name, spec, options)
            except RunInterrupted as exc:
                self._interrupted(exc.run, args.name)
            self._finish(run, args.name, args.display)
        raise_for_status(run)
        if args.check:
            raise_for_checks(run)

    @magic_arguments(name="pipeline")
    @argument("command", choices=("history", "show", "rerun", "compare"), help="What to do (see above).")
    @argument("words", nargs="*", metavar="ARG", help="show: RUN_ID; rerun: NAME STEP [STEP ...]; compare: A B.")
    @argument("--name", help="history: only runs of the pipeline with this name.")
    @argument("--status", help="history: only runs that ended with this status (ok, error, interrupted, ...).")
    @argument("--limit", type=int, default=HISTORY_LIMIT, metavar="N", help="history: at most N runs.")
    @argument("--journal", metavar="PATH", help="history, show: the journal to read (default: %%config "
                                                "PipelineMagics.journal, $PIPELINE_NB_JOURNAL, the per-user one).")
    @line_magic("pipeline")
    def pipeline_command(self, line: str) -> None:
        """The run journal and reruns.

        ``%pipeline history [--name N] [--status S] [--limit N]``: the journal's latest runs,
        newest first. ``%pipeline show RUN_ID``: a journaled run's final rendering (binds
        nothing; ``pipeline_nb.load_run(RUN_ID)`` returns it). ``%pipeline rerun NAME STEP
        [STEP ...]``: run the pipeline of the run bound to NAME again, calling STEP and the
        steps that read it and reusing that run's replies for the rest; the new run is bound
        to NAME and ``_pipeline``. ``%pipeline compare A B``: two runs side by side (each a
        kernel name bound to a run, or a run id from the journal): text diffs, checks, cost, latency.
        """
        args = parse_argstring(self.pipeline_command, line)
        journal = args.journal or self.journal
        if args.command == "history":
            if args.words:
                raise UsageError(f"%pipeline history takes options only, got {' '.join(args.words)!r}")
            self._show_history(history(name=args.name, limit=args.limit, status=args.status, journal=journal))
        elif args.command == "show":
            if len(args.words) != 1:
                raise UsageError("%pipeline show takes one RUN_ID (%pipeline history lists them)")
            self._show(load_run(args.words[0], journal=journal))
        elif args.command == "compare":
            if len(args.words) != 2:
                raise UsageError("%pipeline compare takes two runs: kernel names bound to runs, or run ids")
            ns = self.shell.user_ns
            a, b = (ns[w] if isinstance(ns.get(w), PipelineRun) else w for w in args.words)
            comparison = compare(a, b, journal=journal)
            display({"text/html": comparison._repr_html_(), "text/plain": str(comparison)}, raw=True)
        else:
            if len(args.words) < 2:
                raise UsageError("%pipeline rerun takes NAME STEP [STEP ...]: the kernel name of a run, "
                                 "then the steps to call again")
            self._rerun(args.words[0], args.words[1:])

    # -- running --

    def _spec(self, cell: str, name: str | None) -> PipelineSpec:
        return load_spec(cell, default_name=name or "pipeline", line_offset=1, source_name="<cell>")

    def _earlier(self, name: str | None, resume: str | bool | None,
                 rerun: Sequence[str]) -> PipelineRun | str | bool | None:
        """The run to resume: RUN_ID if given; else, when resuming or rerunning, the run bound to
        NAME, or True (the journal's last run of the pipeline's name)."""
        if isinstance(resume, str):
            return resume
        if not resume and not rerun:
            return None
        bound = self.shell.user_ns.get(name) if name else None
        return bound if isinstance(bound, PipelineRun) else True

    def _execute(self, cell: str, name: str | None, spec: PipelineSpec, options: RunOptions) -> PipelineRun:
        """Run ``spec`` into a live view; the run can then ``rerun()`` steps of this cell."""
        options = replace(options, handlers=[self._view(spec)])
        with first_interrupt_only():  # the caller's block, if it has one, is joined
            try:
                run = execute(spec, options)
            except RunInterrupted as exc:
                exc.run._again = self._again(cell, name, options, exc.run)
                raise
        run._again = self._again(cell, name, options, run)
        return run

    def _again(self, cell: str, name: str | None, options: RunOptions, earlier: PipelineRun) -> Any:
        """``earlier.rerun(*steps)``: the cell again, calling ``steps`` (and their readers) and
        reusing ``earlier``'s replies; raises StepError for a failed step, as ``run()`` does."""
        def again(steps: Sequence[str]) -> PipelineRun:
            run = self._execute(cell, name, self._spec(cell, name), replace(options, resume=earlier,
                                                                            rerun=tuple(steps)))
            raise_for_status(run)
            return run

        return again

    def _rerun(self, name: str, steps: Sequence[str]) -> None:
        earlier = self.shell.user_ns.get(name)
        if not isinstance(earlier, PipelineRun):
            raise UsageError(f"%pipeline rerun: {name!r} is not a run in the kernel (bind one with %%pipeline {name})")
        unknown = [step for step in steps if step not in earlier.steps]
        if unknown:
            raise UsageError(f"%pipeline rerun: run {name!r} has no step {unknown[0]!r}; "
                             f"its steps: {', '.join(earlier.steps)}")
        if earlier._again is None:  # loaded from the journal: its cell is not known here
            raise UsageError(f"%pipeline rerun: {name!r} was loaded from the journal; run its cell again "
                             f"with %%pipeline {name} --resume {earlier.id} --rerun {steps[0]}")
        with first_interrupt_only():
            try:
                run = earlier.rerun(*steps)
            except StepError as exc:  # a step failed: bind the run first, then fail the cell
                if exc.run is not None:
                    self._finish(exc.run, name)
                raise
            except RunInterrupted as exc:
                self._interrupted(exc.run, name)
            self._finish(run, name)

    def _interrupted(self, run: PipelineRun, name: str | None) -> None:
        self._finish(run, name)
        interrupt = KeyboardInterrupt(f"pipeline {run.name!r} interrupted; partial results are kept")
        interrupt._render_traceback_ = lambda: [f"KeyboardInterrupt: {interrupt}"]  # type: ignore[attr-defined]
        raise interrupt from None

    def _view(self, spec: PipelineSpec) -> Handler:
        """The live widget view in a kernel; the console in a terminal."""
        if self._in_kernel:
            try:
                from .display._live import WidgetHandler
            except ImportError:
                pass
            else:
                return WidgetHandler(parents={c.id: s.id for s in spec.all_steps() for c in s.children})
        return ConsoleHandler(summary=True)

    # -- binding and showing --

    def _finish(self, run: PipelineRun, name: str | None, shown: str = "run") -> None:
        ns: dict[str, Any] = self.shell.user_ns
        ns[LAST_RUN] = run
        if name:
            ns[name] = run
        for var, step_id in run.saved.items():
            if run.steps[step_id].status == "ok":
                ns[var] = run.steps[step_id].output
        if shown == "checks":
            self._show_checks(run.checks)
        elif self._in_kernel and shown == "run":  # in a terminal the console has printed the texts and the summary
            self._show(run)

    def _show(self, run: PipelineRun) -> None:
        """The final rendering: HTML, and a text/plain of a line per step (the start of its text)
        for plain-text readers and nbval; in a terminal, the text."""
        if self._in_kernel:
            display({"text/html": run_html(run), "text/plain": run_text(run)}, raw=True)
        else:
            print(run_text(run))

    def _show_checks(self, checks: CheckList) -> None:
        """The verdict table alone: its bytes change only when a verdict does."""
        if self._in_kernel:
            display({"text/html": verdict_html(checks), "text/plain": verdict_text(checks)}, raw=True)
        else:
            print(verdict_text(checks))

    def _show_history(self, runs: History) -> None:
        if self._in_kernel:
            display({"text/html": history_html(runs), "text/plain": str(runs)}, raw=True)
        else:
            print(runs)

    @property
    def _origin(self) -> str:
        """Where runs come from, as the journal records it: the notebook's path when the kernel knows it."""
        ns = self.shell.user_ns
        known = next((str(ns[n]) for n in NOTEBOOK_PATH_NAMES if ns.get(n)), None)
        return known or ("<notebook>" if self._in_kernel else "<ipython>")

    @property
    def _in_kernel(self) -> bool:
        return getattr(self.shell, "kernel", None) is not None


def check_steps(spec: PipelineSpec, steps: Sequence[str], option: str) -> None:
    """UsageError naming the first of ``steps`` that ``spec`` does not have."""
    known = [s.id for s in spec.all_steps()]
    unknown = [step for step in steps if step not in known]
    if unknown:
        raise UsageError(f"{option} {unknown[0]!r}: pipeline {spec.name!r} has no such step; "
                         f"its steps: {', '.join(known)}")


HISTORY_COLUMNS = ("id", "name", "status", "started", "steps", "failed", "tokens", "cost", "duration", "origin")


def history_html(runs: History) -> str:
    """The runs as an HTML table (a notebook's rendering of ``%pipeline history``)."""
    if not runs:
        return f"<p>{escape(str(runs))}</p>"
    head = "".join(f"<th>{c}</th>" for c in HISTORY_COLUMNS)
    rows = []
    for run in runs:
        tokens = (run.input_tokens or 0) + (run.output_tokens or 0)
        cells = (run.id, run.name, run.status, f"{run.started:%Y-%m-%d %H:%M}", run.steps or 0, run.failed or 0,
                 tokens, "" if run.cost is None else f"${run.cost:.4f}",
                 "" if run.duration is None else f"{run.duration:.1f}s", run.origin or "")
        rows.append("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in cells) + "</tr>")
    return f"<table class=\"pnb-history\"><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
