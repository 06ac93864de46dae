"""Constants every layer shares, defined once."""

from __future__ import annotations

# label of a position that is not trained (the cross-entropy ignore_index of torch and
# transformers)
IGNORE_INDEX = -100

# the resolved run config every run writes into its output directory; a directory holding it is a
# run directory (inference, export, eval, runs and the trackers read it)
RUN_CONFIG_FILE = "lmforge_config.yaml"
