"""The format and encoder registries hold every format whatever was imported first: each entry
point is imported alone in a fresh interpreter and sees the same tables."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORMATS = ["alpaca", "kto", "messages", "preference", "prompt", "prompt_completion",
           "prompt_response", "text"]
PROBE = """
import json, sys
import {first}
from lmforge.data.formats import CONVERTERS, FORMAT_COLUMNS
from lmforge.data.types import EXAMPLE_TYPES
from lmforge.data.encoders import ENCODERS
print(json.dumps([sorted(CONVERTERS), sorted(FORMAT_COLUMNS), sorted(EXAMPLE_TYPES),
                  sorted(t.__name__ for t in ENCODERS)]))
"""


@pytest.mark.parametrize("first", ["lmforge.data.formats", "lmforge.data.types",
                                   "lmforge.data.read", "lmforge.data.encode",
                                   "lmforge.data.encoders"])
def test_registries_do_not_depend_on_import_order(first):
    out = subprocess.run([sys.executable, "-c", PROBE.format(first=first)], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    converters, columns, types, encoders = json.loads(out)
    assert converters == columns == FORMATS
    assert types == ["conversation", "kto", "preference", "prompt", "text"]
    assert encoders == ["Conversation", "KTOExample", "PreferenceExample", "Text"]
