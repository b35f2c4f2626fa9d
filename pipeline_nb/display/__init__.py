"""The notebook display: the live widget view (the only ipywidgets/anywidget importer).

``from pipeline_nb.display import WidgetHandler`` streams a run into a live view of your own."""

from ._live import WidgetHandler
from ._widget import LiveView

__all__ = ["LiveView", "WidgetHandler"]
