"""Row attention (``model/row_attention.py``): each right-padded row attended at its own length
gives the batched SDPA's loss, gradients and real-position logits (float32, within 1e-5 / 1e-6);
left padding and generation with a KV cache go to SDPA unchanged; it is chosen only for CPU
float32 sft/pt runs without packing and models whose attention is plain causal SDPA."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _sdpa_model(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32,
                                                attn_implementation="sdpa")


def _pair(model_dir):
    from lmforge.model.row_attention import NAME, use_row_attention

    ref, rows = _sdpa_model(model_dir), _sdpa_model(model_dir)
    assert use_row_attention(rows) and rows.config._attn_implementation == NAME
    return ref, rows


def _right_padded(vocab: int, lengths=(23, 9, 23, 1)):
    g = torch.Generator().manual_seed(0)
    width = max(lengths)
    ids = torch.randint(3, vocab, (len(lengths), width), generator=g)
    mask = (torch.arange(width)[None] < torch.tensor(lengths)[:, None]).long()
    return ids, mask


def _trained_equal(ref, rows, real=None, **batch):
    """One training forward + backward of each model on ``batch``: the same loss (1e-6), logits
    at the ``real`` positions and every gradient (1e-5); returns the rows model's logits."""
    out = {}
    for name, m in (("ref", ref), ("rows", rows)):
        m.train()
        result = m(**batch)
        result.loss.backward()
        out[name] = (result.loss.item(), result.logits.detach(),
                     {n: p.grad for n, p in m.named_parameters() if p.grad is not None})
    (loss_a, logits_a, grads_a), (loss_b, logits_b, grads_b) = out["ref"], out["rows"]
    assert loss_b == pytest.approx(loss_a, rel=1e-6)
    real = torch.ones(logits_a.shape[:2], dtype=torch.bool) if real is None else real
    torch.testing.assert_close(logits_b[real], logits_a[real], rtol=1e-5, atol=1e-5)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name], grad, rtol=1e-5, atol=1e-6, msg=name)
    return logits_b


@pytest.mark.parametrize("model", ["tiny_model_dir", "tiny_qwen_dir"])
def test_loss_gradients_and_logits_equal_batched_sdpa(model, request):
    ref, rows = _pair(request.getfixturevalue(model))
    ids, mask = _right_padded(ref.config.vocab_size)
    _trained_equal(ref, rows, real=mask.bool(), input_ids=ids, attention_mask=mask,
                   labels=ids.masked_fill(mask == 0, -100))


@pytest.mark.parametrize("model", ["tiny_model_dir", "tiny_qwen_dir"])
def test_packed_rows_equal_the_block_diagonal_mask(model, request):
    """Position ids restarting at each packed example (data/packing.py, no attention mask):
    transformers builds a block-diagonal causal mask, rows attention attends each example alone."""
    ref, rows = _pair(request.getfixturevalue(model))
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, ref.config.vocab_size, (3, 20), generator=g)
    pos = torch.tensor([[*range(7), *range(9), *range(4)], [*range(12), *range(8)],
                        list(range(20))])  # the last row holds one example
    for m in (ref, rows):
        m.config.use_cache = False  # as the stages train: a cache hides the packing from masks
    logits = _trained_equal(ref, rows, input_ids=ids, position_ids=pos, labels=ids)
    with torch.no_grad():  # and an example alone gives its packed logits
        alone = ref(input_ids=ids[:1, 7:16], position_ids=torch.arange(9)[None]).logits
    torch.testing.assert_close(logits[0, 7:16], alone[0], rtol=1e-5, atol=1e-5)


def test_left_padding_and_cached_generation_go_to_sdpa(tiny_model_dir):
    ref, rows = _pair(tiny_model_dir)
    ids, mask = _right_padded(ref.config.vocab_size)
    left = mask.flip(-1)
    with torch.no_grad():
        a, b = ref(input_ids=ids, attention_mask=left).logits, \
            rows(input_ids=ids, attention_mask=left).logits
    torch.testing.assert_close(b[left.bool()], a[left.bool()], rtol=1e-6, atol=1e-6)
    prompt = ids[:2, :6]
    kw = dict(attention_mask=torch.ones_like(prompt), max_new_tokens=6, do_sample=False,
              pad_token_id=0)
    assert torch.equal(rows.generate(prompt, **kw), ref.generate(prompt, **kw))


@pytest.mark.parametrize("padded", [False, True])
def test_prefix_tuning_keys_before_the_queries(padded, tiny_model_dir):
    """peft's prefix tuning hands the layers more keys than queries (virtual tokens first)."""
    from peft import PrefixTuningConfig, get_peft_model

    from lmforge.model.row_attention import use_row_attention

    models = []
    for rows in (False, True):
        base = _sdpa_model(tiny_model_dir)
        torch.manual_seed(0)
        model = get_peft_model(base, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
        assert not rows or use_row_attention(model)
        models.append(model.eval())
    ids, mask = _right_padded(models[0].config.vocab_size)
    kw = {"attention_mask": mask} if padded else {}
    with torch.no_grad():
        a, b = (m(input_ids=ids, **kw).logits for m in models)
    real = mask.bool() if padded else torch.ones_like(mask, dtype=torch.bool)
    torch.testing.assert_close(b[real], a[real], rtol=1e-6, atol=1e-6)


def test_padded_positions_are_zero_and_get_no_gradient():
    from types import SimpleNamespace

    from lmforge.model.row_attention import rows_attention

    q = torch.randn(2, 4, 5, 8, requires_grad=True)
    k, v = torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    out, weights = rows_attention(SimpleNamespace(training=False), q, k, v, mask)
    assert out.shape == (2, 5, 4, 8) and weights is None
    assert torch.count_nonzero(out[0, 3:]) == 0
    out.sum().backward()
    assert torch.count_nonzero(q.grad[0, :, 3:]) == 0 and torch.count_nonzero(q.grad[1]) > 0


def test_only_plain_causal_sdpa_models_switch(tiny_model_dir):
    from transformers import AutoConfig

    from lmforge.model.row_attention import eligible

    config = AutoConfig.from_pretrained(str(tiny_model_dir))
    config._attn_implementation = "sdpa"
    assert eligible(config)
    config._attn_implementation = "eager"
    assert not eligible(config)
    config._attn_implementation = "sdpa"
    config.model_type = "gemma2"
    assert not eligible(config)
    config.model_type = "mistral"
    config.sliding_window = 64
    assert not eligible(config)
    config.sliding_window = None
    config.layer_types = ["full_attention", "sliding_attention"]
    assert not eligible(config)


@pytest.mark.parametrize("change,expected", [
    ({}, True),
    ({"data": {"packing": True}}, True),  # packed examples attended one by one
    ({"model": {"attn_implementation": "sdpa"}}, False),
    ({"train": {"precision": "bf16"}}, False),  # bf16 flash backward: a fixed cost per call
])
def test_chosen_for_cpu_fp32_sft_and_pt_unless_sdpa_is_asked(change, expected, tmp_path):
    from lmforge.training.device import decide
    from tests.integration.test_adapter_training import sft_config

    cfg = sft_config(tmp_path, "run", {"type": "lora", "r": 4}, model=change.get("model"),
                     train=change.get("train"))
    if "data" in change:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update=change["data"])})
    assert (decide(cfg).cpu_attention == "rows") is expected


def test_a_training_run_uses_it(tmp_path):
    from lmforge.model.loader import attention_kind, load_tokenizer
    from lmforge.model.row_attention import NAME
    from lmforge.training.trainer import prepare_model
    from tests.integration.test_adapter_training import sft_config

    cfg = sft_config(tmp_path, "run", {"type": "lora", "r": 4})
    model = prepare_model(cfg, load_tokenizer(cfg.model))
    assert model.config._attn_implementation == NAME
    assert attention_kind(model) == "sdpa"  # what it runs (eval/choices keeps its 4-D masks)
