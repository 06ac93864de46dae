"""OpenAI-compatible HTTP server on one ChatEngine (``lmforge serve``, extra ``serve``).

- ``schemas``: request bodies (pydantic) and the response objects.
- ``errors``: OpenAI-style error bodies; every bad request is a 4xx, never a 5xx.
- ``scheduler``: one generation thread, a bounded queue with back-pressure, batching.
- ``app``: the FastAPI routes (/v1/models, /v1/chat/completions, /v1/completions, /health).
- ``server``: binding, API key, warnings, uvicorn.
"""

from __future__ import annotations
