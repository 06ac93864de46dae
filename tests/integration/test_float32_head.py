"""``infer.util.float32_head``: under bf16 autocast the LM head's logits are the float32 product
of the head's input and its float32 weight (not autocast's bf16 one); outside autocast, or for a
head stored in another dtype, nothing changes; the hook is gone afterwards; and choice scores in
bf16 move toward the float32 ones."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    return model.eval()


def _logits_and_head_input(model, ids):
    seen = {}

    def keep(module, args, output):  # returns None: the output stays as it is
        seen["x"] = args[0].detach()

    handle = model.get_output_embeddings().register_forward_hook(keep)
    try:
        with torch.no_grad():
            logits = model(input_ids=ids).logits
    finally:
        handle.remove()
    return logits, seen["x"]


def test_logits_are_the_float32_product_under_autocast(tiny_model_dir):
    from lmforge.infer.util import float32_head

    model = _model(tiny_model_dir)
    ids = torch.tensor([[5, 9, 11, 3, 8, 7]])
    head = model.get_output_embeddings()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain, _ = _logits_and_head_input(model, ids)
        with float32_head(model):
            fixed, x = _logits_and_head_input(model, ids)
    assert fixed.dtype == torch.float32
    want = torch.nn.functional.linear(x.float(), head.weight)
    assert torch.equal(fixed, want)
    assert not torch.equal(fixed, plain.float())  # bf16 logits were rounded
    assert not head._forward_hooks  # removed on exit


def test_nothing_changes_outside_autocast_or_for_a_bf16_head(tiny_model_dir):
    from lmforge.infer.util import float32_head

    model = _model(tiny_model_dir)
    ids = torch.tensor([[5, 9, 11, 3]])
    plain, _ = _logits_and_head_input(model, ids)
    with float32_head(model):
        same, _ = _logits_and_head_input(model, ids)
    assert torch.equal(plain, same)
    model.to(torch.bfloat16)
    with float32_head(model):
        assert not model.get_output_embeddings()._forward_hooks


def _tied(tiny_model_dir, out):
    """The tiny model with its LM head tied to the embeddings (as SmolLM2's): the engine's bf16
    cast leaves such a head float32 (training/frozen_cast.py), the case float32_head handles."""
    import shutil

    model = _model(tiny_model_dir)
    model.config.tie_word_embeddings = True
    model.lm_head.weight = model.get_input_embeddings().weight
    model.save_pretrained(out)
    for f in tiny_model_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy(f, out / f.name)
    return out


def test_bf16_choice_scores_move_toward_float32(tiny_model_dir, tmp_path, monkeypatch):
    from lmforge.eval import choices
    from lmforge.infer import util
    from lmforge.infer.engine import ChatEngine
    from lmforge.training import device

    monkeypatch.setattr(device, "cpu_native_bf16", lambda *a, **k: True)
    tied = str(_tied(tiny_model_dir, tmp_path / "tied"))
    prompts = ["pick a fruit", "which fruit is yellow and long?", "red", "two three four"]
    fruits = ["apple", "banana split", "cherry", "kiwi"]
    msgs = [[{"role": "user", "content": p}] for p in prompts]
    fp32 = ChatEngine.load(tied, precision="fp32")
    bf16 = ChatEngine.load(tied, precision="bf16")
    assert bf16.model.get_output_embeddings().weight.dtype == torch.float32
    rows = [choices.pairs_for(fp32, m, fruits) for m in msgs]
    want = torch.tensor(choices.score(fp32, rows))
    fixed = torch.tensor(choices.score(bf16, rows))
    monkeypatch.setattr(util, "float32_head", lambda model: _nothing())
    rounded = torch.tensor(choices.score(bf16, rows))
    assert (fixed - want).abs().mean() < (rounded - want).abs().mean()


def _nothing():
    from contextlib import nullcontext

    return nullcontext()
