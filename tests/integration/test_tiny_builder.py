"""The tiny builder: deterministic, loadable, with a template that marks assistant spans."""

from __future__ import annotations

import hashlib

from lmforge.utils.tiny import build_tiny


def _digest(path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_same_seed_same_weights_and_vocab(tmp_path):
    a = build_tiny(tmp_path / "a", seed=3)
    b = build_tiny(tmp_path / "b", seed=3)
    c = build_tiny(tmp_path / "c", seed=4)
    assert _digest(a) == _digest(b) != _digest(c)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()


def test_assistant_mask_from_generation_markers(tiny_tokenizer):
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}]
    out = tiny_tokenizer.apply_chat_template(msgs, tokenize=True, return_dict=True,
                                             return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    trained = [i for i, m in zip(ids, mask) if m]
    assert tiny_tokenizer.decode(trained) == "yes<|im_end|>"
    assert trained[-1] == tiny_tokenizer.eos_token_id


def test_linear_layers_are_multiples_of_32(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            assert mod.out_features % 32 == 0, name
