"""The gradio web UI (``lmforge webui``, extra ``webui``): a Chat tab and a Train tab.

It binds 127.0.0.1 unless told otherwise and warns when bound elsewhere: the UI has no login,
and the Train tab starts processes on this machine. gradio's usage analytics are turned off and
nothing is shared through gradio's tunnel.
"""

from __future__ import annotations

import logging
import os

from lmforge.webui import chat, train

log = logging.getLogger("lmforge.webui")


def _gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from lmforge.errors import require

    return require("gradio", "webui", "lmforge webui")


def build(holder: chat.Holder, model: str | None = None, default_max_new_tokens: int = 256):
    gr = _gradio()
    runs = train.Runs()
    with gr.Blocks(title="lmforge") as demo:
        gr.Markdown("## lmforge")
        with gr.Tab("Chat", elem_id="tab-chat"):
            chat.build(gr, holder, model, default_max_new_tokens)
        with gr.Tab("Train", elem_id="tab-train"):
            train.build(gr, runs, os.getcwd(), {"model.path": model} if model else None)
    demo.lmforge_runs = runs
    return demo


def binding_warning(host: str) -> str | None:
    from lmforge.commands._inference import is_loopback

    if is_loopback(host):
        return None
    return (f"the web UI is bound to {host}: anyone who can reach this port can chat with the "
            "model and start training runs on this machine (it has no login); bind to "
            "127.0.0.1 unless that is what you want")


def launch(demo, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    warning = binding_warning(host)
    if warning:
        log.warning(warning)
    demo.queue(default_concurrency_limit=4)
    return demo.launch(server_name=host, server_port=port, share=False, inbrowser=False,
                       ssr_mode=False, show_error=True, prevent_thread_lock=not block,
                       quiet=False)
