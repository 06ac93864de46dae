"""Where lmforge keeps what it builds once and reuses: ``$LMFORGE_CACHE``, else
``~/.cache/lmforge``. A leaf module (it imports nothing from lmforge) so the model loaders, the
data cache and the builtin registry can all use it without importing each other."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("LMFORGE_CACHE", Path.home() / ".cache" / "lmforge"))
