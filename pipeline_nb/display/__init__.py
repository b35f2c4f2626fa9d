"""The notebook display: the live widget view (the only ipywidgets/anywidget importer)."""
