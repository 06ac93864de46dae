"""Run the API server: the API key (flag or environment), binding warnings, uvicorn.

The key is best given through the environment (``LMFORGE_API_KEY``), where ``ps`` does not show
it; it is never logged. Binding to anything but loopback without a key is allowed (a trusted
network, a container) but warned about: anyone who can reach the port can use the model.
"""

from __future__ import annotations

import logging
import os

from lmforge.commands._inference import is_loopback

log = logging.getLogger("lmforge.serve")

API_KEY_ENV = "LMFORGE_API_KEY"


def api_key(flag: str | None) -> str | None:
    return flag or os.environ.get(API_KEY_ENV) or None


def binding_warning(host: str, key: str | None) -> str | None:
    if is_loopback(host) or key:
        return None
    return (f"serving on {host} without an API key: anyone who can reach this port can use "
            f"the model; set {API_KEY_ENV} (or --api-key), or bind to 127.0.0.1")


def build(engine, settings, max_concurrency: int = 8, max_queue: int = 64):
    """The FastAPI app and its scheduler (tests run it on a uvicorn thread)."""
    from lmforge.serve.app import create_app
    from lmforge.serve.scheduler import Scheduler

    scheduler = Scheduler(engine, max_concurrency, max_queue)
    return create_app(engine, settings, scheduler), scheduler


def serve(engine, settings, host: str = "127.0.0.1", port: int = 8000,
          max_concurrency: int = 8, max_queue: int = 64, log_level: str = "info") -> None:
    import uvicorn

    warning = binding_warning(host, settings.api_key)
    if warning:
        log.warning(warning)
    app, scheduler = build(engine, settings, max_concurrency, max_queue)
    log.info("serving '%s' on http://%s:%d/v1 (key %s; at most %d generating, %d waiting)",
             settings.name, host if ":" not in host else f"[{host}]", port,
             "required" if settings.api_key else "not required", max_concurrency, max_queue)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=True)
    finally:
        scheduler.close()
