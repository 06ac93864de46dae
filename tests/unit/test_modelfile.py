"""The Ollama Modelfile: each built-in chat template's Go translation renders exactly the text the
Jinja template renders (5 conversations, with and without system, multi-turn), a tokenizer
template with a default system prompt becomes a SYSTEM line, and anything else falls back to a
raw template with a comment. Plus the Go-template subset renderer itself."""

from __future__ import annotations

import pytest

from lmforge.export.gotemplate import GoTemplateError, render
from lmforge.export.modelfile import modelfile_text, render_ollama, translate

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You answer in French."},
     {"role": "user", "content": "Capital of Italy?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a joke.\nA short one."}],
    [{"role": "system", "content": "Be terse.\nNo lists."}, {"role": "user", "content": "1+1?"},
     {"role": "assistant", "content": "2"}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3?"}],
    [{"role": "user", "content": "Use {{ braces }} and <tags> & \"quotes\""},
     {"role": "assistant", "content": "OK: {{ braces }}"}, {"role": "user", "content": "again"}],
]
SMOLLM_LIKE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}")


def _hf(template, tokenizer, messages, add_bos=False):
    from lmforge.data.render import render_text

    text = render_text(messages, template, tokenizer, add_generation_prompt=True)
    bos = tokenizer.bos_token
    return text[len(bos):] if add_bos and text.startswith(bos) else text


@pytest.mark.parametrize("add_bos", [False, True])
@pytest.mark.parametrize("name", ["chatml", "qwen", "llama3", "llama2", "alpaca", "plain"])
def test_builtin_templates_render_identically(name, add_bos, tiny_tokenizer):
    from lmforge.data.templates import builtin_template

    template = builtin_template(name)
    tr = translate(template, tiny_tokenizer, add_bos=add_bos)
    assert tr.family == {"qwen": "chatml"}.get(name, name)
    for conv in CONVERSATIONS:
        assert render_ollama(tr.template, conv, tr.system) == _hf(template, tiny_tokenizer, conv,
                                                                  add_bos)
    if name == "qwen":
        assert tr.system.startswith("You are Qwen")
    else:
        assert tr.system is None
    eot = {"chatml": "<|im_end|>", "qwen": "<|im_end|>", "llama3": "<|eot_id|>"}
    assert tr.stops[0] == eot.get(name, tiny_tokenizer.eos_token)
    if add_bos and name in ("llama3", "llama2"):  # the runtime adds the leading BOS itself
        assert not render_ollama(tr.template, CONVERSATIONS[0]).startswith(
            tiny_tokenizer.bos_token)


def test_tokenizer_template_with_default_system(tiny_tokenizer):
    tr = translate(SMOLLM_LIKE, tiny_tokenizer)
    assert tr.family == "chatml" and tr.system.startswith("You are a helpful AI assistant named")
    for conv in CONVERSATIONS:
        assert render_ollama(tr.template, conv, tr.system) == _hf(SMOLLM_LIKE, tiny_tokenizer,
                                                                  conv)
    text = modelfile_text("model.gguf", tr)
    assert text.splitlines()[1] == "FROM ./model.gguf"
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM' in text
    assert 'PARAMETER stop "<|im_end|>"' in text
    # the run's data.system wins over the template's default
    assert translate(SMOLLM_LIKE, tiny_tokenizer, system="Be brief.").system == "Be brief."


def test_unknown_template_falls_back_to_raw_prompt(tiny_tokenizer):
    odd = "{% for m in messages %}[{{ m['role'] | upper }}] {{ m['content'] }}\n{% endfor %}"
    tr = translate(odd, tiny_tokenizer)
    assert tr.family is None and tr.template == "{{ .Prompt }}"
    text = modelfile_text("model.gguf", tr)
    assert "# the run has a chat template lmforge cannot translate" in text
    assert 'TEMPLATE """{{ .Prompt }}"""' in text
    assert 'PARAMETER stop "<|im_end|>"' in text
    assert translate(None, tiny_tokenizer).family is None


def test_go_renderer_subset():
    data = {"Messages": [{"Role": "user", "Content": "a"}, {"Role": "bot", "Content": "b"}],
            "System": ""}
    src = ('{{- $n := "" }}x  \n  {{- range $i, $m := .Messages }}'
           '{{ if eq $i 0 }}[{{ .Role }}]{{ else if eq .Role "bot" }}<{{ $m.Content }}>'
           '{{ else }}?{{ end }}{{ $n = .Content }}{{ end -}}  \n  !{{ $n }}'
           '{{ if and $.System true }}S{{ end }}{{ or $.System "d" }}'
           '{{ len .Messages }}{{ if not (eq (len .Messages) 3) }}N{{ end }}')
    assert render(src, data) == "x[user]<b>!bd2N"
    assert render('{{ "q\\"\\n" }}', {}) == 'q"\n'
    for bad in ("{{ if true }}x", "{{ end }}", "{{ printf \"%s\" 1 }}", "{{ $undefined }}"):
        with pytest.raises(GoTemplateError):
            render(bad, {})
