"""Under pytest the notebooks replay their cassettes: a reply missing from a cassette
fails the cell instead of calling a model. Set PIPELINE_NB_CASSETTE_MODE to override."""

import os

os.environ.setdefault("PIPELINE_NB_CASSETTE_MODE", "replay")
