"""``adapter.layers_to_transform``: LoRA only in the chosen decoder layers, trained through the real
SFT stage. Only those layers get LoRA weights, they all receive gradients and move, the frozen
layers below see inputs that do not require grad during training (the backward pass stops at the
lowest adapted layer: no enable_input_require_grads without gradient checkpointing), and the
merged export computes what the adapter computes."""

from __future__ import annotations

import re

import pytest
from transformers import TrainerCallback

from tests.integration.test_adapter_training import (_equal, probe_logits, sft_config,
                                                      train_with_snapshot)

LAYER = re.compile(r"\.layers\.(\d+)\.")


class InputGrads(TrainerCallback):
    """Records, per decoder layer, whether its hidden-state input required grad in training."""

    def __init__(self):
        self.requires: dict[int, set[bool]] = {}

    def on_train_begin(self, args, state, control, model=None, **kw):
        from lmforge.model.adapters import layer_list

        layers = model.get_submodule(layer_list(model))
        for i, layer in enumerate(layers):
            layer.register_forward_pre_hook(self._hook(i), with_kwargs=True)

    def _hook(self, i):
        def hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            if module.training:
                self.requires.setdefault(i, set()).add(bool(hidden.requires_grad))
        return hook


def _lora_layers(names) -> set[int]:
    return {int(LAYER.search(n).group(1)) for n in names if "lora_" in n}


@pytest.mark.parametrize("layers,expected", [(-1, {1}), ([1], {1}), ([0], {0})])
def test_lora_only_in_chosen_layers(layers, expected, tmp_path):
    from lmforge import stages

    cfg = sft_config(tmp_path, "run", {"type": "lora", "r": 4, "target_modules": "all-linear",
                                       "layers_to_transform": layers}, steps=3)
    probe = InputGrads()
    from tests.integration.test_adapter_training import Snapshot

    snap = Snapshot()
    result = stages.run(cfg, callbacks=[snap, probe])
    assert _lora_layers(snap.trainable) == expected
    # every linear module of the chosen layers is adapted (all-linear spelled out per layer)
    per_layer = {n.split(".layers.")[1].split(".lora_")[0] for n in snap.trainable}
    assert {p.split(".", 1)[1] for p in per_layer} >= {"self_attn.q_proj", "self_attn.v_proj",
                                                     "mlp.down_proj"}
    moved = [n for n in snap.trainable if not _equal(snap.begin[n], snap.end[n])]
    assert sorted(moved) == sorted(snap.trainable)  # gradients reached every LoRA matrix
    frozen = set(snap.begin) - snap.trainable
    assert all(_equal(snap.begin[n], snap.end[n]) for n in frozen)
    # inputs of the layers up to the lowest adapted one never require grad while training
    lowest = min(expected)
    for i, seen in probe.requires.items():
        assert seen == ({False} if i <= lowest else {True}), (i, seen)
    _merged_matches(result.output_dir, snap, tmp_path)


def _merged_matches(run_dir, snap, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from lmforge.export.merge import export

    out = tmp_path / "merged"
    export(run_dir, out, merge=True)
    merged = AutoModelForCausalLM.from_pretrained(out)
    torch.testing.assert_close(probe_logits(merged), snap.logits, atol=1e-5, rtol=1e-5)


def test_saved_adapter_records_the_layers(tmp_path):
    import json

    cfg = sft_config(tmp_path, "run", {"type": "lora", "r": 4,
                                       "target_modules": ["q_proj", "v_proj"],
                                       "layers_to_transform": [1]}, steps=1)
    result, snap = train_with_snapshot(cfg)
    saved = json.loads((result.output_dir / "adapter_config.json").read_text())
    assert saved["layers_to_transform"] == [1] and saved["layers_pattern"] == "layers"
    assert _lora_layers(snap.trainable) == {1}


@pytest.mark.parametrize("layers,message", [(-5, "the model has 2"), ([0, 7], r"\[7\] do not")])
def test_layers_outside_the_model_are_config_errors(layers, message, tmp_path):
    from lmforge.errors import ConfigError

    cfg = sft_config(tmp_path, "run", {"type": "lora", "layers_to_transform": layers})
    with pytest.raises(ConfigError, match=message):
        train_with_snapshot(cfg)


@pytest.mark.parametrize("adapter,message", [
    ({"type": "lora", "layers_to_transform": 3}, "must be negative"),
    ({"type": "lora", "layers_to_transform": []}, "indices >= 0"),
    ({"type": "lora", "layers_to_transform": [-1]}, "indices >= 0"),
    ({"type": "prefix_tuning", "layers_to_transform": -1}, "not prefix_tuning"),
])
def test_invalid_settings_fail_validation(adapter, message):
    from lmforge.config.adapter import AdapterConfig

    with pytest.raises(ValueError, match=message):
        AdapterConfig(**adapter)
