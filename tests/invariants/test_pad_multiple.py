"""``train.pad_to_multiple_of`` changes only the padding: the collator rounds each batch's length
up, and the loss and gradients of the padded batch equal the unpadded batch's (the extra positions
are masked out and carry label -100)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _features(lengths, vocab=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(3, vocab, (n,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": [-100] * (n // 2) + ids[n // 2:]})
    return out


def test_collator_rounds_up_and_masks_the_extra_positions():
    from lmforge.data.collate import PadCollator

    feats = _features([5, 17, 9])
    plain, padded = PadCollator(0)(feats), PadCollator(0, 16)(feats)
    assert plain["input_ids"].shape == (3, 17) and padded["input_ids"].shape == (3, 32)
    assert torch.equal(padded["input_ids"][:, :17], plain["input_ids"])
    assert (padded["labels"][:, 17:] == -100).all() and (padded["attention_mask"][:, 17:] == 0).all()
    assert PadCollator(0, 16)(_features([16]))["input_ids"].shape == (1, 16)  # already a multiple


@pytest.mark.parametrize("fast", [True, False])
def test_same_loss_and_gradients_padded_to_16(tiny_model_dir, fast):
    from transformers import AutoModelForCausalLM

    from lmforge.data.collate import PadCollator
    from lmforge.training.fastloss import causal_lm_loss

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    model.eval()
    feats = _features([7, 21, 12], vocab=model.config.vocab_size)

    def loss_and_grads(batch):
        model.zero_grad()
        loss = causal_lm_loss(model, dict(batch)) if fast else model(**batch).loss
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    loss_a, grads_a = loss_and_grads(PadCollator(0)(feats))
    loss_b, grads_b = loss_and_grads(PadCollator(0, 16)(feats))
    assert loss_b == pytest.approx(loss_a, abs=1e-5)
    assert len(grads_a) == len(grads_b)
    for a, b in zip(grads_a, grads_b):
        assert torch.allclose(a, b, atol=1e-5)
