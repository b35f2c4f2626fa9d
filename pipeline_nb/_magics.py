"""``%%pipeline``: parse the options, run the engine, bind and show the results."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Integer, Unicode

from ._api import parse_vars, raise_for_status
from ._cassette import MODES
from ._engine import DEFAULT_MAX_TOKENS, DEFAULT_MODEL, DEFAULT_PROVIDER, RunOptions, execute
from ._errors import RunInterrupted
from ._interrupts import first_interrupt_only
from ._render import run_html, run_text
from ._results import PipelineRun
from ._loader import load_spec
from ._spec import PipelineSpec
from .streaming._handlers import ConsoleHandler, Handler

LAST_RUN = "_pipeline"


@magics_class
class PipelineMagics(Magics):
    """The ``%%pipeline`` cell magic. Defaults are settable with ``%config PipelineMagics.<trait>``."""

    provider = Unicode(DEFAULT_PROVIDER, help="Provider for steps that set none (claude, mock).").tag(config=True)
    model = Unicode(DEFAULT_MODEL, help="Model for steps that set none.").tag(config=True)
    max_tokens = Integer(DEFAULT_MAX_TOKENS, help="max_tokens for steps that set none.").tag(config=True)

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
    @cell_magic
    def pipeline(self, line: str, cell: str) -> None:
        """Run the YAML pipeline in the cell body, streaming into a live view.

        The run is bound to NAME (if given; it also names a spec without ``name:``) and to
        ``_pipeline``; steps with ``save_as``
        also bind their output. Templates see --var values, then ``vars:``, then the
        kernel namespace, and ``steps.<id>.text`` of earlier steps. Line numbers in
        errors count the ``%%pipeline`` line as line 1.
        """
        args = parse_argstring(self.pipeline, line)
        if args.name is not None and not args.name.isidentifier():
            raise UsageError(f"%%pipeline NAME must be a Python name, got {args.name!r}")
        try:
            overrides = parse_vars(args.var)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        spec = load_spec(cell, default_name=args.name or "pipeline", line_offset=1, source_name="<cell>")
        options = RunOptions(
            vars=overrides,
            namespace=self.shell.user_ns,
            provider=args.provider,
            model=args.model,
            stream=args.stream,
            default_provider=self.provider,
            default_model=self.model,
            default_max_tokens=self.max_tokens,
            handlers=[self._view(spec)],
            cassette=args.cassette,
            cassette_mode=args.cassette_mode,
            cassette_pace=args.cassette_pace,
        )
        with first_interrupt_only():  # more interrupts while it stops must not cut the binding short
            try:
                run = execute(spec, options)
            except RunInterrupted as exc:
                self._finish(exc.run, args.name)
                interrupt = KeyboardInterrupt(f"pipeline {spec.name!r} interrupted; partial results are kept")
                interrupt._render_traceback_ = lambda: [f"KeyboardInterrupt: {interrupt}"]  # type: ignore[attr-defined]
                raise interrupt from None
            self._finish(run, args.name)
        raise_for_status(run)

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

    def _finish(self, run: PipelineRun, name: str | None) -> None:
        ns: dict[str, Any] = self.shell.user_ns
        ns[LAST_RUN] = run
        if name:
            ns[name] = run
        for var, step_id in run.saved.items():
            if run.steps[step_id].status == "ok":
                ns[var] = run.steps[step_id].output
        if self._in_kernel:  # in a terminal the console has printed the texts and the summary
            # HTML, and a text/plain of a line per step (the start of its text) for plain-text readers and nbval
            display({"text/html": run_html(run), "text/plain": run_text(run)}, raw=True)

    @property
    def _in_kernel(self) -> bool:
        return getattr(self.shell, "kernel", None) is not None
