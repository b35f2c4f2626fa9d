"""Figure 4, start-up: ``%load_ext pipeline_nb`` in a fresh kernel, against ``import ipywidgets``
in another fresh kernel (the cell's own time, pre_run_cell to post_run_cell), alternating,
several kernels each; the figure is the difference of the medians.

Also printed, in the pipeline_nb kernels: what the first ``%%pipeline`` cell adds later
(the live view, which imports anywidget and ipywidgets) and what the first claude step
adds (``anthropic``), both imported lazily.
"""

from __future__ import annotations

from ._common import Kernel, median, spread
from ._report import Figure


def run(repeat: int = 5, quick: bool = False) -> list[Figure]:
    print(f"start-up: %load_ext pipeline_nb vs import ipywidgets, {repeat} fresh kernels each", flush=True)
    widgets, load, view, sdk = [], [], [], []
    for _ in range(repeat):
        with Kernel() as kernel:
            widgets.append(kernel.check("import ipywidgets").cell_seconds)
        with Kernel() as kernel:
            load.append(kernel.check("%load_ext pipeline_nb").cell_seconds)
            view.append(kernel.check("import pipeline_nb.display._live").cell_seconds)
            sdk.append(kernel.check("import pipeline_nb.providers._claude").cell_seconds)
    extra = (median(load) - median(widgets)) * 1000
    print(f"  import ipywidgets: {median(widgets) * 1000:.0f} ms ({spread([w * 1000 for w in widgets])})", flush=True)
    print(f"  %load_ext pipeline_nb: {median(load) * 1000:.0f} ms ({spread([x * 1000 for x in load])})",
          flush=True)
    print(f"  later, lazily: the live view (anywidget, ipywidgets) {median(view) * 1000:.0f} ms at the first "
          f"%%pipeline; anthropic {median(sdk) * 1000:.0f} ms at the first claude step", flush=True)
    return [Figure(
        "start-up, %load_ext pipeline_nb (extra over import ipywidgets)",
        f"{median(load) * 1000:.0f} ms", f"import ipywidgets {median(widgets) * 1000:.0f} ms",
        extra, 150, 150, unit="ms",
        note=f"medians of {repeat} fresh kernels each; the first %%pipeline then imports the live view "
             f"({median(view) * 1000:.0f} ms) and a claude step anthropic ({median(sdk) * 1000:.0f} ms)",
    )]
