"""Benchmarks for issue 6: run them all with ``python -m benchmarks``.

Each figure is a ratio of two things measured side by side in the same run, printed with
its baseline and its target. These are benchmarks, not tests: nothing here asserts a time.

- ``traffic``: iopub messages and bytes for one streamed step, through a real kernel;
- ``overhead``: a ``%%pipeline`` cell against a bare SDK ``text_stream`` loop, same kernel;
- ``fanout``: a for_each of 60 items at ``max_parallel: 20`` against 3 waves of one call;
- ``startup``: ``%load_ext pipeline_nb`` against ``import ipywidgets``, fresh processes;
- ``memory``: peak traced memory while streaming a 1 MB reply, as a multiple of its size.

The fake API (``pipeline_nb.testing.FakeAnthropic``) runs in its own process, as the real
one would be on another machine.
"""
