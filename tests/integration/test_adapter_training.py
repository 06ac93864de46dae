"""Every training method trains a few SFT steps on the tiny model through the real stage.

For each method: the parameters marked trainable change, every other parameter stays bit-for-bit
the same (snapshots taken by a Trainer callback at train begin/end), the trainable/total counts
in metrics.json match the model, and the saved artifact reloaded with plain peft/transformers
computes exactly what the trained model computed.
"""

from __future__ import annotations

import json

import pytest
from transformers import TrainerCallback

from tests.conftest import write_jsonl

WORDS = "apple banana cherry dog cat bird red green blue one two three".split()


def sft_config(tmp_path, out_name: str, adapter: dict, model: dict | None = None,
               steps: int = 3, lr: float = 1e-2, train: dict | None = None):
    """A validated RunConfig: stage sft on a tiny learnable task."""
    from lmforge.config import validate

    data = tmp_path / "train.jsonl"
    if not data.exists():
        write_jsonl(data, [{"instruction": f"repeat {w}", "output": f"{w} {w} {w}"}
                           for w in WORDS])
    tree = {"stage": "sft", "model": {"path": "builtin:tiny-llama", **(model or {})},
            "adapter": adapter, "data": {"train": str(data), "max_length": 64},
            "train": {"output_dir": str(tmp_path / out_name), "max_steps": steps,
                      "batch_size": 4, "learning_rate": lr, "report_to": ["none"],
                      "logging_steps": 1, "save_steps": 1000, "seed": 0, **(train or {})}}
    return validate(tree)


class Snapshot(TrainerCallback):
    """Keeps every parameter's value at train begin and end, and the final probe logits."""

    def __init__(self):
        self.begin, self.end, self.trainable, self.logits = {}, {}, set(), None

    def on_train_begin(self, args, state, control, model=None, **kw):
        self.begin = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.trainable = {n for n, p in model.named_parameters() if p.requires_grad}

    def on_train_end(self, args, state, control, model=None, **kw):
        self.end = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.logits = probe_logits(model)


def probe_logits(model):
    """Logits of a fixed input in eval mode (dropout off), restoring the training mode."""
    import torch

    was_training = model.training
    model.eval()
    ids = torch.arange(5, 21)[None]
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float()
    model.train(was_training)
    return out[:, -ids.shape[1]:]  # prompt-learning methods prepend virtual tokens


def train_with_snapshot(cfg):
    from lmforge import stages

    snap = Snapshot()
    result = stages.run(cfg, callbacks=[snap])
    return result, snap


def _equal(a, b) -> bool:
    import torch

    return a.shape == b.shape and torch.equal(a, b)


METHODS = {
    "full": {"type": "full"},
    "freeze": {"type": "freeze", "trainable_layers": 1, "trainable_modules": ["lm_head"]},
    "lora": {"type": "lora", "r": 4, "target_modules": ["q_proj", "v_proj"],
             "modules_to_save": ["lm_head"]},
    "dora": {"type": "lora", "r": 4, "use_dora": True, "use_rslora": True},
    "qlora4": {"type": "qlora", "r": 4, "bits": 4},
    "qlora8": {"type": "qlora", "r": 4, "bits": 8},
    "adalora": {"type": "adalora", "r": 4, "target_r": 2, "tinit": 1, "tfinal": 1},
    "prompt_tuning": {"type": "prompt_tuning", "num_virtual_tokens": 4,
                      "prompt_init_text": "repeat the word"},
    "p_tuning": {"type": "p_tuning", "num_virtual_tokens": 4, "encoder_hidden_size": 32},
    "prefix_tuning": {"type": "prefix_tuning", "num_virtual_tokens": 4},
}


@pytest.mark.parametrize("method", list(METHODS))
def test_method_trains_only_its_parameters(method, tmp_path, tiny_model_dir):
    cfg = sft_config(tmp_path, method, METHODS[method], steps=4)
    result, snap = train_with_snapshot(cfg)
    assert snap.trainable and snap.end
    changed = [n for n in snap.trainable if not _equal(snap.begin[n], snap.end[n])]
    frozen = set(snap.begin) - snap.trainable
    moved = [n for n in frozen if not _equal(snap.begin[n], snap.end[n])]
    assert not moved, f"frozen parameters changed: {moved[:5]}"
    # every trainable tensor moved (AdaLoRA may prune some singular values back to zero)
    assert len(changed) == len(snap.trainable) or (
        method == "adalora" and len(changed) >= 0.75 * len(snap.trainable)), (
        sorted(set(snap.trainable) - set(changed))[:5])
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    assert metrics["trainable_parameters"] == sum(snap.end[n].numel() for n in snap.trainable)
    if method == "full":
        assert metrics["trainable_parameters"] == metrics["total_parameters"]
        assert not frozen
    else:
        assert 0 < metrics["trainable_parameters"] < metrics["total_parameters"]
    if method == "freeze":  # last layer + lm_head only
        assert all(".layers.1." in n or n.startswith("lm_head") for n in snap.trainable)
        assert any(n.startswith("lm_head") for n in snap.trainable)
    _check_reload(method, result.output_dir, snap, tiny_model_dir)


def _check_reload(method, out, snap, base_dir):
    """The saved artifact loads with plain transformers/peft and computes what the trained model
    computed (same logits on a probe input)."""
    import torch
    from transformers import AutoModelForCausalLM

    if method in ("full", "freeze"):
        model = AutoModelForCausalLM.from_pretrained(out)
    else:
        from peft import PeftModel

        assert (out / "adapter_config.json").is_file()
        assert (out / "adapter_model.safetensors").is_file()
        kwargs = {}
        if method.startswith("qlora"):  # the adapter was trained on the quantized base
            from lmforge.model.quant import bnb_config

            kwargs["quantization_config"] = bnb_config(int(method[-1]))
        base = AutoModelForCausalLM.from_pretrained(base_dir, **kwargs)
        model = PeftModel.from_pretrained(base, out)
    torch.testing.assert_close(probe_logits(model), snap.logits, atol=1e-5, rtol=1e-5)


def test_adalora_schedule_runs_and_records_total_step(tmp_path):
    """The AdaLoRA callback sets total_step from the trainer and reallocates ranks."""
    cfg = sft_config(tmp_path, "ada", METHODS["adalora"], steps=5)
    result, snap = train_with_snapshot(cfg)
    saved = json.loads((result.output_dir / "adapter_config.json").read_text())
    assert saved["peft_type"] == "ADALORA" and saved["total_step"] == 5
    assert saved["rank_pattern"], "update_and_allocate never ran (no rank pattern)"
    kept = [sum(v) for v in saved["rank_pattern"].values()]
    assert sum(kept) < 4 * len(kept), "the budget should have pruned some ranks"


def test_continue_from_saved_adapter(tmp_path):
    """adapter.path continues training the saved adapter (starting from its values)."""
    first = sft_config(tmp_path, "first", METHODS["dora"])
    r1, s1 = train_with_snapshot(first)
    second = sft_config(tmp_path, "second", dict(METHODS["dora"], path=str(r1.output_dir)))
    r2, s2 = train_with_snapshot(second)
    for n in s1.trainable:
        assert _equal(s2.begin[n], s1.end[n]), n
    assert any(not _equal(s2.end[n], s1.end[n]) for n in s1.trainable)


def test_continue_refuses_another_method(tmp_path):
    from lmforge.errors import ConfigError

    r1, _ = train_with_snapshot(sft_config(tmp_path, "a", METHODS["prefix_tuning"]))
    with pytest.raises(ConfigError, match="PREFIX_TUNING"):
        train_with_snapshot(sft_config(tmp_path, "b", {"type": "lora",
                                                       "path": str(r1.output_dir)}))
