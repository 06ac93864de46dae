"""An Ollama Modelfile for a GGUF export: ``FROM``, ``TEMPLATE``, ``PARAMETER stop``, ``SYSTEM``.

Ollama does not run Jinja: its ``TEMPLATE`` is a Go text/template over ``.Messages`` (each with
``.Role`` and ``.Content``), and a Modelfile ``SYSTEM`` is put in front of a conversation that has
no system message of its own. So the run's chat template is translated: lmforge knows the Go form
of each template family it ships (chatml, qwen, llama3, llama2, alpaca, plain) and picks the one
that renders, for a set of probe conversations, exactly the text the Jinja template renders
(``gotemplate.render`` against transformers' renderer). A default system prompt baked into the
Jinja template (Qwen's, SmolLM2's "You are a helpful AI assistant named SmolLM...") becomes the
``SYSTEM`` line, so tokenizer templates of the same shape match too; the run's ``data.system``
takes precedence over it.

Go templates have no ``trim``: a Jinja template that trims message content (llama2, llama3) and a
Go one that does not agree for content without leading/trailing whitespace (the probes), and the
Modelfile says so. Where the runtime adds BOS itself (the GGUF's ``add_bos_token``), the template
leaves out the BOS the Jinja template starts with.

A template that matches no family gets a Modelfile whose comment says so and a raw
``{{ .Prompt }}`` template (the prompt is sent as given), and a message for the CLI to print.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from lmforge.export.gotemplate import render

_CHATML = ('{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}'
           '<|im_start|>assistant\n')
_LLAMA3 = ('{BOS}{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n'
           '{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n')
_LLAMA2 = ('{{- $system := "" }}{{- $first := true }}\n'
           '{{- range $i, $m := .Messages }}\n'
           '{{- if and (eq $i 0) (eq .Role "system") }}{{ $system = .Content }}\n'
           '{{- else }}\n'
           '{{- if eq .Role "user" }}{FIRST_BOS}[INST] {{ if and $first $system }}<<SYS>>\n'
           '{{ $system }}\n<</SYS>>\n\n{{ end }}{{ .Content }} [/INST]\n'
           '{{- else if eq .Role "assistant" }} {{ .Content }} {EOS}\n'
           '{{- end }}{{ $first = false }}\n'
           '{{- end }}\n'
           '{{- end }}')
_ALPACA = ('{{- $first := true }}\n'
           '{{- range .Messages }}\n'
           '{{- if $first }}{{ if eq .Role "system" }}{{ .Content }}\n\n'
           '{{ else }}Below is an instruction that describes a task. Write a response that '
           'appropriately completes the request.\n\n{{ end }}{{ $first = false }}{{ end }}\n'
           '{{- if eq .Role "user" }}### Instruction:\n{{ .Content }}\n\n'
           '{{ else if eq .Role "assistant" }}### Response:\n{{ .Content }}{EOS}\n\n{{ end }}\n'
           '{{- end }}### Response:\n')
_PLAIN = ('{{- range .Messages }}{{ .Content }}{{ if eq .Role "assistant" }}{EOS}{{ end }}\n'
          '{{ end }}')
FAMILIES = {"chatml": _CHATML, "llama3": _LLAMA3, "llama2": _LLAMA2, "alpaca": _ALPACA,
            "plain": _PLAIN}
RAW = "{{ .Prompt }}"

PROBES = [
    [{"role": "user", "content": "Hi there"}],
    [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Sky?"}],
    [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
     {"role": "user", "content": "Times 3?\nShow it."}],
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "A"},
     {"role": "assistant", "content": "B\nC"}, {"role": "user", "content": "D"}],
]
_MARK = "\x00SYSTEM-PROBE\x00"


@dataclass
class Translation:
    family: str | None  # None: no family matched (raw template)
    template: str
    system: str | None
    stops: list[str]
    notes: list[str] = field(default_factory=list)


def ollama_messages(messages: list[dict], system: str | None) -> list[dict]:
    """The messages Ollama renders: the Modelfile SYSTEM first when the conversation has none."""
    if system and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": system}] + list(messages)
    return messages


def render_ollama(template: str, messages: list[dict], system: str | None = None) -> str:
    msgs = [{"Role": m["role"], "Content": m["content"]} for m in ollama_messages(messages,
                                                                                   system)]
    return render(template, {"Messages": msgs, "System": system or "", "Prompt": ""})


def _instantiate(source: str, bos: str, eos: str, add_bos: bool) -> str:
    first_bos = ('{{ if not $first }}' + bos + '{{ end }}') if add_bos else bos
    return (source.replace("{BOS}", "" if add_bos else bos).replace("{FIRST_BOS}", first_bos)
            .replace("{EOS}", eos))


def _default_system(go: str, hf_text) -> str | None:
    """The system prompt the Jinja template adds to a conversation without one, if any."""
    probe = [{"role": "user", "content": "Hi there"}]
    marked = render_ollama(go, probe, _MARK)
    if _MARK not in marked:
        return None
    head, tail = marked.split(_MARK, 1)
    text = hf_text(probe)
    if text.startswith(head) and text.endswith(tail) and len(text) > len(head) + len(tail):
        return text[len(head):len(text) - len(tail)]
    return None


def _matches(go: str, system: str | None, hf_text) -> bool:
    try:
        return all(render_ollama(go, p, system) == hf_text(p) for p in PROBES)
    except Exception:  # noqa: BLE001 - a template that cannot render a probe does not match
        return False


def translate(jinja_template: str | None, tokenizer, add_bos: bool = False,
              system: str | None = None) -> Translation:
    """The Go template, default system prompt and stop strings for ``jinja_template``."""
    from lmforge.data.render import TemplateError, render_text
    from lmforge.data.templates import end_of_turn_text

    bos = getattr(tokenizer, "bos_token", None) or ""
    eos = getattr(tokenizer, "eos_token", None) or ""
    stops = []
    if jinja_template:
        try:
            stops.append(end_of_turn_text(jinja_template, tokenizer))
        except TemplateError:  # a template lmforge cannot analyse: EOS alone stops
            pass
    stops = [s for s in dict.fromkeys(stops + [eos]) if s]

    def hf_text(messages):
        text = render_text(messages, jinja_template, tokenizer, add_generation_prompt=True)
        return text[len(bos):] if add_bos and bos and text.startswith(bos) else text

    if jinja_template:
        for name, source in FAMILIES.items():
            go = _instantiate(source, bos, eos, add_bos)
            default = _default_system(go, hf_text)
            if _matches(go, None, hf_text) or (default and _matches(go, default, hf_text)):
                chosen = system or (default if not _matches(go, None, hf_text) else None)
                notes = []
                if "trim" in jinja_template:
                    notes.append("the chat template trims message text; Ollama's Go templates "
                                 "cannot, so leading/trailing whitespace in messages is kept")
                return Translation(name, go, chosen, stops, notes)
    why = "no chat template" if not jinja_template else "a chat template lmforge cannot translate"
    return Translation(None, RAW, system, stops,
                       [f"the run has {why} to Ollama's template language: the Modelfile sends "
                        "prompts raw (TEMPLATE {{ .Prompt }}); write its TEMPLATE by hand to chat "
                        "with it"])


def _quote(text: str) -> str:
    if '"""' in text:
        return json.dumps(text)
    return f'"""{text}"""'


def modelfile_text(gguf_name: str, tr: Translation) -> str:
    lines = ["# Ollama Modelfile written by lmforge: ollama create NAME -f Modelfile",
             f"FROM ./{gguf_name}"]
    if tr.family is None:
        lines += [f"# {note}" for note in tr.notes]
    else:
        lines.append(f"# chat template: {tr.family} (translated from the run's Jinja template)")
        lines += [f"# note: {note}" for note in tr.notes]
    lines.append(f"TEMPLATE {_quote(tr.template)}")
    if tr.system:
        lines.append(f"SYSTEM {_quote(tr.system)}")
    lines += [f"PARAMETER stop {json.dumps(s)}" for s in tr.stops]
    return "\n".join(lines) + "\n"
