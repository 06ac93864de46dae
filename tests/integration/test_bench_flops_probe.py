"""The benchmark's Probe (bench/flops.py) on a real tiny Llama with peft LoRA: it reads the
linear maps and ranks of every layer, and measures what a training step executes — positions
through the LM head and each layer (twice under activation checkpointing), and which layers'
inputs needed a gradient."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _model(layers_to_transform=None):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, vocab_size=64,
                         max_position_embeddings=32)
    base = LlamaForCausalLM(config)
    names = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=names, task_type="CAUSAL_LM",
                      layers_to_transform=layers_to_transform)
    return get_peft_model(base, lora)


def _step(model, probe):
    ids = torch.randint(0, 64, (2, 5))
    model.train()
    model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
    return probe.snapshot()


def test_shape_and_one_plain_step():
    from bench.flops import Probe

    model = _model()
    probe = Probe(model)
    shape = probe.shape
    assert shape.layers == 2 and (shape.hidden, shape.vocab) == (16, 64)
    assert len(shape.linears) == 14 and {x.rank for x in shape.linears} == {2}
    assert all(x.lora_trained and not x.weight_trained for x in shape.linears)
    q = next(x for x in shape.linears if x.layer == 0 and x.stage == 0 and x.d_out == 16)
    assert q.d_in == 16  # q_proj: 2 heads x head_dim 8
    assert probe.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    snap = _step(model, probe)
    assert snap == {"head": 10, "head_recompute": 0, "layers": [10, 10]}
    assert probe.input_grad == [False, True]  # the embeddings' output needs no gradient
    probe.remove()
    _step(model, probe)
    assert probe.head_positions == 10  # hooks gone


def test_checkpointing_runs_each_layer_twice_and_needs_input_gradients():
    from bench.flops import Probe

    model = _model()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    model.enable_input_require_grads()
    probe = Probe(model)
    assert _step(model, probe)["layers"] == [20, 20]
    assert probe.input_grad == [True, True]


def test_upper_layer_only_adapter():
    from bench.flops import Probe, executed_flops

    model = _model(layers_to_transform=[1])
    probe = Probe(model)
    ranks = {(x.layer, x.rank) for x in probe.shape.linears}
    assert ranks == {(0, 0), (1, 2)}
    _step(model, probe)
    assert probe.input_grad == [False, False]
    f = executed_flops(probe.shape, 10, probe.head_positions, tuple(probe.input_grad),
                       probe.layer_positions)
    g = executed_flops(probe.shape, 10, 10)  # the structure alone says the same
    assert f == g and f["recompute"] == 0
