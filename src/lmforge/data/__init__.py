"""Data: sources -> formats -> templates -> encoder -> packing -> collate (docs/architecture.md).

The format registries (``formats.CONVERTERS`` / ``formats.FORMAT_COLUMNS``, ``types.EXAMPLE_TYPES``)
get the preference, KTO and prompt-only formats from the modules that define them. Those modules
are imported here, before any module of this package runs, so the registries hold every format
whatever a caller imported first (tests/unit/test_data_registries.py).
"""

from lmforge.data import preference, prompts  # noqa: F401 - every format registrant
