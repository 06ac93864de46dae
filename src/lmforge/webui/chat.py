"""The Chat tab: a model picker, a streaming chat with history, and generation settings.

Answers come from ``ChatEngine.stream`` with the template the model was trained with, so they
equal those of ``lmforge chat`` and ``lmforge serve`` for the same settings. The model loaded is
shared by every browser tab (one model in memory; the engine serialises generation).

A "tools" box (a JSON list of tool schemas) gives tools to a tool-calling template; the answer
shows the model's tool calls as it writes them (results are typed as the next user message: the
tab has no tool-result turn).
"""

from __future__ import annotations

import threading


class Holder:
    """The loaded engine, its default generation settings and default system prompt."""

    def __init__(self):
        self.engine = None
        self.gen = None
        self.system: str | None = None
        self.lock = threading.Lock()
        self.precision = "fp32"  # --precision: every model this UI loads computes so

    def load(self, path: str, adapter: str | None = None, template: str | None = None):
        from lmforge.config.eval import GenerationConfig
        from lmforge.infer.engine import ChatEngine, options

        engine = ChatEngine.load(path, adapter=adapter or None, template=template or None,
                                 batch_size=1, precision=self.precision)
        run_cfg = engine.run_config
        base = run_cfg.eval.generation if run_cfg is not None else GenerationConfig()
        with self.lock:
            self.engine = engine
            self.gen = options(base.model_copy(update={"num_return_sequences": 1}))
            self.system = run_cfg.data.system if run_cfg is not None else None
        return engine

    def use(self, engine, gen, system: str | None = None) -> None:
        with self.lock:
            self.engine, self.gen, self.system = engine, gen, system


def _text(content) -> str:
    """Message content as gradio hands it back: a string, a list of parts, or a dict."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("value") or "")
    if isinstance(content, (list, tuple)):
        return "".join(_text(c) for c in content)
    return "" if content is None else str(content)


def messages(history: list, system: str | None) -> list[dict]:
    head = [{"role": "system", "content": system}] if system and system.strip() else []
    return head + [{"role": m["role"], "content": _text(m["content"])}
                   for m in history or [] if m.get("role") in ("user", "assistant")]


def tool_list(text: str | None) -> list | None:
    """The tools box: empty, or a JSON list of tool schemas (ValueError when bad)."""
    import json

    from lmforge.data.tools import parse_tools
    from lmforge.errors import DataError

    if not (text or "").strip():
        return None
    try:
        tools = parse_tools({"tools": json.loads(text)}, {}, "tools")
    except DataError as exc:
        raise ValueError(f"tools: {exc.reason}") from None
    except ValueError as exc:
        raise ValueError(f"tools: not valid JSON ({exc})") from None
    return list(tools) if tools else None


def settings(holder: Holder, max_new_tokens, temperature, top_p, top_k, repetition_penalty,
             seed):
    from lmforge.infer.engine import options

    temperature = float(temperature or 0)
    return options(holder.gen, max_new_tokens=int(max_new_tokens), do_sample=temperature > 0,
                   temperature=temperature or None, top_p=float(top_p), top_k=int(top_k),
                   repetition_penalty=float(repetition_penalty),
                   seed=None if seed in (None, "", -1) else int(seed))


def build(gr, holder: Holder, model: str | None, default_max_new_tokens: int) -> None:
    """The tab's components and events (called inside a ``gr.Blocks`` context)."""
    gen = holder.gen
    with gr.Row():
        path = gr.Textbox(model or "", label="model or run", scale=4,
                          info="a run's output_dir, a checkpoint, a merged export, a model "
                          "directory or builtin:<name>")
        adapter = gr.Textbox("", label="adapter (optional)", scale=2)
        load = gr.Button("Load", scale=1)
    status = gr.Markdown(f"loaded: `{holder.engine.name}`" if holder.engine else
                         "no model loaded", elem_id="chat-status")
    chatbot = gr.Chatbot(label="chat", elem_id="chatbot", render_markdown=False, height=420)
    with gr.Row():
        box = gr.Textbox(placeholder="Type a message and press Enter", show_label=False,
                         scale=6, elem_id="chat-input")
        send = gr.Button("Send", variant="primary", scale=1, elem_id="chat-send")
        clear = gr.Button("Clear", scale=1, elem_id="chat-clear")
    with gr.Accordion("generation settings", open=False):
        system = gr.Textbox(holder.system or "", label="system prompt")
        max_new = gr.Slider(1, 4096, value=default_max_new_tokens, step=1,
                            label="max new tokens")
        temperature = gr.Slider(0, 2, value=gen.temperature if gen and gen.do_sample else 0,
                                step=0.05, label="temperature", info="0: greedy")
        top_p = gr.Slider(0.01, 1, value=gen.top_p if gen else 1.0, step=0.01, label="top p")
        top_k = gr.Slider(0, 200, value=gen.top_k if gen else 0, step=1,
                          label="top k (0: off)")
        rep = gr.Slider(0.5, 2, value=gen.repetition_penalty if gen else 1.0, step=0.01,
                        label="repetition penalty")
        seed = gr.Number(-1, precision=0, label="seed (-1: none)")
        tools = gr.Textbox("", label="tools (JSON list of schemas)", lines=3,
                           info="for a tool-calling template, e.g. chatml_tools")

    def do_load(p, a):
        if not (p or "").strip():
            raise gr.Error("enter a model directory, a run or builtin:<name>")
        from lmforge.errors import LmforgeError

        try:
            engine = holder.load(p.strip(), a.strip() or None)
        except LmforgeError as exc:
            raise gr.Error(exc.message) from None
        return f"loaded: `{engine.name}`", [], holder.system or ""

    def respond(message, history, sys_prompt, mx, temp, tp, tk, rp, sd, tool_text=""):
        history = list(history or [])
        if not (message or "").strip():
            yield history, message
            return
        if holder.engine is None:
            raise gr.Error("load a model first")
        from lmforge.errors import LmforgeError

        chat = messages(history, sys_prompt) + [{"role": "user", "content": message}]
        g = settings(holder, mx, temp, tp, tk, rp, sd)
        try:
            schemas = tool_list(tool_text)
            if schemas:
                from lmforge.infer.tool_calls import refuse_without

                refuse_without(holder.engine.call_format, holder.engine.name)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
        except LmforgeError as exc:
            raise gr.Error(exc.message) from None
        history += [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        yield history, ""
        text = ""
        for piece in holder.engine.stream(chat, g, tools=schemas):
            text += piece
            history[-1] = {"role": "assistant", "content": text}
            yield history, ""

    inputs = [box, chatbot, system, max_new, temperature, top_p, top_k, rep, seed, tools]
    load.click(do_load, [path, adapter], [status, chatbot, system])
    box.submit(respond, inputs, [chatbot, box])
    send.click(respond, inputs, [chatbot, box])
    clear.click(lambda: ([], ""), None, [chatbot, box])
