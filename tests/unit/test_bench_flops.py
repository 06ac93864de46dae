"""The executed-FLOP formula of the benchmark (bench/flops.py) against counts done by hand on a
two-layer toy shape, and the 6·N identity it must reduce to for full fine-tuning."""

from __future__ import annotations

from bench.flops import Linear, Shape, executed_flops

# per layer: q (4->2), o (2->4), up (4->8), down (8->4); vocabulary 10, hidden 4


def _layer(i: int, rank: int = 1, lora_trained: bool = True, weight_trained: bool = False):
    dims = [(0, 4, 2), (1, 2, 4), (2, 4, 8), (3, 8, 4)]
    return [Linear(i, stage, a, b, rank, lora_trained, weight_trained) for stage, a, b in dims]


def _shape(*layers, head_trained: bool = False) -> Shape:
    linears = tuple(x for layer in layers for x in layer)
    return Shape(len(layers), linears, hidden=4, vocab=10, head_trained=head_trained)


def test_lora_on_every_layer_counted_by_hand():
    shape = _shape(_layer(0), _layer(1))
    # forward per position, one layer: q 2*4*2 + 2*1*(4+2) = 28, o 28, up 2*4*8 + 2*12 = 88,
    # down 88 -> 232; head 2*4*10 = 80
    # backward, layer 0 (its input needs no gradient):
    #   q: no input gradient; B-input 2*1*2 = 4; A and B weights 2*1*(4+2) = 12     -> 16
    #   o: input 2*2*4 + A-input 2*1*2 = 20; B-input 8; weights 12                    -> 40
    #   up: input 64 + 8 = 72; B-input 16; weights 24                                  -> 112
    #   down: input 64 + 16 = 80; B-input 8; weights 24                                -> 112
    # layer 1 (its input needs a gradient): q gets 2*4*2 + 2*1*4 = 24 more           -> 304
    f = executed_flops(shape, positions=10, head_positions=3)
    assert f["forward"] == 2 * 232 * 10 + 80 * 3
    assert f["backward"] == (280 + 304) * 10 + 80 * 3  # the head's input gradient only
    assert f["recompute"] == 0
    assert f["total"] == f["forward"] + f["backward"]
    # checkpointing recomputes the forward pass of both layers (both run a backward pass)
    ck = executed_flops(shape, positions=10, head_positions=3, checkpointed=True)
    assert ck["recompute"] == 2 * 232 * 10 and ck["backward"] == f["backward"]
    # measured positions instead: layer 1 ran twice, layer 0 once
    measured = executed_flops(shape, 10, 3, layer_positions=[10, 20])
    assert measured["recompute"] == 232 * 10


def test_upper_layers_only_stop_the_backward_pass_early():
    shape = _shape(_layer(0, rank=0, lora_trained=False), _layer(1))
    assert shape.derived_input_grad() == (False, False)
    f = executed_flops(shape, positions=10, head_positions=10, checkpointed=True)
    # layer 0: 2*4*2 + 2*2*4 + 2*4*8 + 2*8*4 = 160 forward, no backward, never recomputed;
    # layer 1 as layer 0 of the test above: 280 backward
    assert f["forward"] == (160 + 232) * 10 + 80 * 10
    assert f["backward"] == 280 * 10 + 80 * 10
    assert f["recompute"] == 232 * 10
    # a trainer that makes the hidden states require grad (checkpointing with
    # enable_input_require_grads) pays for the input gradient of everything above the embeddings
    forced = executed_flops(shape, 10, 10, input_grad=(True, True))
    assert forced["backward"] == (160 + 304) * 10 + 80 * 10


def test_full_fine_tuning_with_every_input_gradient_is_six_n():
    shape = _shape(_layer(0, rank=0, weight_trained=True), _layer(1, rank=0, weight_trained=True),
                   head_trained=True)
    n = 2 * (4 * 2 + 2 * 4 + 4 * 8 + 8 * 4) + 4 * 10  # linear weights + head
    f = executed_flops(shape, positions=7, head_positions=7, input_grad=(True, True))
    assert f["total"] == 6 * n * 7
    # without an embedding gradient the first projections skip their input gradient
    g = executed_flops(shape, positions=7, head_positions=7)
    assert f["total"] - g["total"] == 2 * 4 * 2 * 7
