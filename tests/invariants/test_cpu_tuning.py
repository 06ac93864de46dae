"""The CPU process settings (``utils/cpu_tuning.py``): SDPA with grouped-query attention gives
the loss and gradients of transformers' repeated key/value heads, without repeating them; glibc
keeps freed memory, so memory freed and allocated again costs few page faults; and the opt-out."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")


def _loss_and_grads(model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32,
                                                 attn_implementation="sdpa")
    assert model.config.num_key_value_heads < model.config.num_attention_heads  # a GQA model
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                             lora_dropout=0.0, init_lora_weights=False))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (3, 17), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :6] = 0  # padding: transformers passes a mask to SDPA
    loss = model(input_ids=ids, attention_mask=mask,
                 labels=ids.masked_fill(mask == 0, -100)).loss
    loss.backward()
    return loss.item(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def test_grouped_query_sdpa_equals_repeated_heads(tiny_model_dir, monkeypatch):
    from transformers.integrations import sdpa_attention

    from lmforge.utils import cpu_tuning

    repeats = []
    original = sdpa_attention.repeat_kv
    monkeypatch.setattr(sdpa_attention, "repeat_kv",
                        lambda *a: repeats.append(1) or original(*a))
    monkeypatch.setenv(cpu_tuning.GQA_VARIABLE, "0")
    loss_a, grads_a = _loss_and_grads(tiny_model_dir)
    assert repeats  # transformers' default with a mask: the heads are repeated
    repeats.clear()
    monkeypatch.delenv(cpu_tuning.GQA_VARIABLE)
    assert cpu_tuning.grouped_query_sdpa()
    loss_b, grads_b = _loss_and_grads(tiny_model_dir)
    assert not repeats
    assert loss_b == pytest.approx(loss_a, rel=1e-6)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_user_setting_and_opt_out_are_kept(monkeypatch):
    from lmforge.utils import cpu_tuning

    monkeypatch.setenv(cpu_tuning.GQA_VARIABLE, "0")
    assert cpu_tuning.grouped_query_sdpa() is False
    monkeypatch.setenv(cpu_tuning.OPT_OUT, "1")
    assert cpu_tuning.apply(True) == {"keep_freed_memory": False, "grouped_query_sdpa": False}
    monkeypatch.delenv(cpu_tuning.OPT_OUT)
    assert cpu_tuning.apply(False) == {"keep_freed_memory": False, "grouped_query_sdpa": False}


FAULTS = textwrap.dedent("""
    import resource, sys
    import torch
    from lmforge.utils import cpu_tuning
    if sys.argv[1] == "keep":
        assert cpu_tuning.keep_freed_memory()
    def round_trip():  # 160 MB in 10 MB tensors, written, then all freed
        blocks = [torch.ones(10 * 2**20 // 4) for _ in range(16)]
        del blocks
    round_trip(); round_trip()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    round_trip()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux only")
def test_freed_memory_is_reused_without_page_faults():
    """160 MB freed and allocated again: with the setting, at most a quarter of its 40,960 pages
    fault again (measured: 2,560 every run). glibc's defaults usually fault nearly all of them
    again (38,369-40,929), but not always (2,560 in 1 of 6 runs: a small allocation left above
    the freed blocks stops the trim), so the defaults are not asserted on."""
    out = subprocess.run([sys.executable, "-c", FAULTS, "keep"], capture_output=True, text=True,
                         timeout=120, check=True)
    pages = 16 * 10 * 2**20 // 4096
    assert int(out.stdout.split()[-1]) * 4 < pages
