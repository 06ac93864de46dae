"""``data.template_system: drop``: the chat template's default system turn is cut out of
conversations that have no system message, identically for training (tokens and masks), inference
prompts and the run's saved template; conversations with a system message are unchanged."""

from __future__ import annotations

import pytest

from tests.conftest import write_jsonl

# SmolLM2-135M-Instruct's own template (no {% generation %} markers: spans are derived)
SMOLLM2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
           "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
           "Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
           "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
           "{{ '<|im_start|>assistant\n' }}{% endif %}")
DEFAULTS = {"smollm2": "You are a helpful AI assistant named SmolLM",
            "qwen": "You are Qwen, created by Alibaba Cloud",
            "alpaca": "Below is an instruction that describes a task"}
CHAT = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"}, {"role": "assistant", "content": "6"}]


def _template(name, tokenizer):
    from lmforge.data.templates import resolve_template

    return SMOLLM2 if name == "smollm2" else resolve_template(name, tokenizer)


def _encode(messages, template, tokenizer):
    from lmforge.data.encode import encode_conversation
    from lmforge.data.types import Conversation

    return encode_conversation(Conversation(tuple(messages)), tokenizer, template)


@pytest.mark.parametrize("name", list(DEFAULTS))
def test_dropped_default_keeps_every_trained_token(name, tiny_tokenizer):
    from lmforge.data.template_system import without_default_system
    from lmforge.data.templates import render_prompt

    tok = tiny_tokenizer
    keep = _template(name, tok)
    drop = without_default_system(keep, tok)
    assert drop != keep
    before, after = _encode(CHAT, keep, tok), _encode(CHAT, drop, tok)
    text_before = tok.decode(before.input_ids)
    text_after = tok.decode(after.input_ids)
    assert DEFAULTS[name] in text_before and DEFAULTS[name] not in text_after
    cut = len(before.input_ids) - len(after.input_ids)
    assert cut >= 15  # the default turn's tokens, on every example
    if name != "alpaca":  # ChatML: the block ends on a special token, so tokens align exactly
        assert after.input_ids == before.input_ids[cut:]
        assert after.labels == before.labels[cut:]
    # the trained tokens (the template's assistant mask) are the same tokens either way
    trained = [[t for t, lab in zip(e.input_ids, e.labels) if lab != -100]
               for e in (before, after)]
    assert trained[0] == trained[1] and trained[0]
    # inference renders the prompt the same way
    prompt = render_prompt(CHAT[:1], drop, tok)
    assert DEFAULTS[name] not in prompt
    assert render_prompt(CHAT[:1], keep, tok).endswith(prompt)


@pytest.mark.parametrize("name", list(DEFAULTS))
def test_conversations_with_a_system_message_are_unchanged(name, tiny_tokenizer):
    from lmforge.data.template_system import without_default_system

    tok = tiny_tokenizer
    keep = _template(name, tok)
    drop = without_default_system(keep, tok)
    chat = [{"role": "system", "content": "Be brief."}] + CHAT
    a, b = _encode(chat, keep, tok), _encode(chat, drop, tok)
    assert (a.input_ids, a.labels) == (b.input_ids, b.labels)
    # a user system prompt equal to the default is kept too (only the injected turn goes)
    default = [{"role": "system", "content": DEFAULTS[name]}] + CHAT
    assert _encode(default, drop, tok).input_ids == _encode(default, keep, tok).input_ids


@pytest.mark.parametrize("name", ["chatml", "llama3", "llama2", "plain"])
def test_templates_without_a_default_are_returned_as_they_are(name, tiny_tokenizer):
    from lmforge.data.templates import resolve_template

    assert resolve_template(name, tiny_tokenizer, "drop") == resolve_template(name,
                                                                              tiny_tokenizer)


def test_dropping_twice_is_dropping_once(tiny_tokenizer):
    from lmforge.data.template_system import without_default_system

    once = without_default_system(SMOLLM2, tiny_tokenizer)
    assert without_default_system(once, tiny_tokenizer) == once


def test_run_saves_and_serves_the_dropped_template(tmp_path):
    """Training renders without the default turn; the run's tokenizer carries that template, and
    the engine loaded from the run (as eval/chat/serve load it) renders the same prompt."""
    from lmforge import stages
    from lmforge.config import validate
    from lmforge.infer.engine import ChatEngine

    data = write_jsonl(tmp_path / "train.jsonl",
                       [{"instruction": f"say {w}", "output": w} for w in "abcdefgh"])
    cfg = validate({"stage": "sft", "model": {"path": "builtin:tiny-llama", "template": "qwen"},
                    "adapter": {"type": "lora", "r": 2},
                    "data": {"train": str(data), "max_length": 64, "template_system": "drop"},
                    "train": {"output_dir": str(tmp_path / "run"), "max_steps": 1,
                              "batch_size": 4, "report_to": ["none"], "save_steps": 1000}})
    result = stages.run(cfg)
    engine = ChatEngine.load(str(result.output_dir))
    prompt = engine.render([{"role": "user", "content": "say a"}])
    assert prompt == "<|im_start|>user\nsay a<|im_end|>\n<|im_start|>assistant\n"
    from lmforge.data.templates import resolve_template

    assert engine.template == resolve_template("qwen", engine.tokenizer, "drop")
    # the GGUF export re-resolves the named built-in the same way
    from lmforge.export.gguf_export import _template
    from lmforge.export.source import inspect_source

    assert _template(inspect_source(result.output_dir), engine.tokenizer) == engine.template
