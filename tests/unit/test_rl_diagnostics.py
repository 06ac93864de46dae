"""Reward-hacking diagnostics: distinct-n, the most frequent opening and the collapse warning on
hand-made completions, and the callback on the tiny model (a collapsed policy is caught)."""

from __future__ import annotations

import logging

import pytest

from lmforge.eval.diversity import (collapse_warning, diagnostics, distinct_n, opening,
                                    top_opening, words)

STOCK = "I'm so glad you're enjoying the movie."
DIVERSE = ["The plot drags in the middle but the ending lands.",
           "Its cast is superb, especially the two leads.",
           "A slow, beautiful film about grief and memory.",
           "Nothing here works: the jokes fall flat and the pacing is off.",
           "Shot in black and white, it looks like a dream.",
           "Few sequels manage to surprise; this one does."]


def test_words_and_openings():
    assert words(STOCK) == ["i'm", "so", "glad", "you're", "enjoying", "the", "movie"]
    assert opening(STOCK) == "i'm so glad you're"
    assert opening("Short.") == "short"
    assert top_opening(["a b c d e", "A b, c d!", "x y"]) == ("a b c d", 2)
    assert top_opening([]) == ("", 0)


def test_distinct_n_by_hand():
    # words: a b a b | a c -> 1-grams 6, distinct 3; 2-grams ab ba ab | ac -> 4, distinct 3
    texts = ["a b a b", "a c"]
    assert distinct_n(texts, 1) == pytest.approx(3 / 6)
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)
    assert distinct_n(["", "one"], 2) == 0.0  # no word pairs at all


def test_identical_outputs_fire_the_warning():
    found = diagnostics([STOCK] * 20)
    assert found["top_opening_share"] == 1.0 and found["top_opening"] == "i'm so glad you're"
    assert found["distinct_2"] == pytest.approx(6 / 120)
    assert found["mean_words"] == 7 and found["samples"] == 20
    warning = collapse_warning(found)
    assert warning is not None and "100% of 20" in warning and "i'm so glad you're" in warning


def test_diverse_outputs_do_not_fire_it():
    found = diagnostics(DIVERSE)
    assert found["top_opening_share"] == pytest.approx(1 / 6)
    assert found["distinct_1"] > 0.8 and found["distinct_2"] > 0.95
    assert collapse_warning(found) is None


def test_threshold_is_a_share_of_the_samples_and_configurable():
    texts = [STOCK] * 3 + DIVERSE[:7]  # 3 of 9 share their opening: 33 %
    assert collapse_warning(diagnostics(texts), threshold=0.2) is not None
    assert collapse_warning(diagnostics(texts), threshold=0.4) is None
    assert collapse_warning(diagnostics([STOCK])) is None  # one sample proves nothing
    assert collapse_warning(diagnostics([])) is None


def _callback(tiny_model_dir, prompts, **gen):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from lmforge.rl.diagnostics import RLDiagnostics

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    eos = [tok.eos_token_id]
    config = GenerationConfig(max_new_tokens=8, eos_token_id=eos, pad_token_id=tok.pad_token_id,
                              **gen)
    ids = tok(prompts)["input_ids"]
    return model, RLDiagnostics(ids, tok, config, eos, temperature=1.0, threshold=0.2)


def test_callback_catches_a_collapsed_policy(tiny_model_dir, caplog):
    from transformers import TrainerControl, TrainerState

    # greedy decoding of one prompt: every sample is the same text, as from a collapsed policy
    model, watch = _callback(tiny_model_dir, ["It was a"] * 8, do_sample=False)
    state = TrainerState()
    state.log_history = [{"eval_loss": 1.0, "step": 0}]
    metrics = {"eval_loss": 1.0}
    with caplog.at_level(logging.INFO, logger="lmforge.rl.diagnostics"):
        watch.on_evaluate(None, state, TrainerControl(), model=model, metrics=metrics)
    assert metrics["diag_top_opening_share"] == 1.0
    assert state.log_history[-1]["diag_distinct_2"] == metrics["diag_distinct_2"]
    assert "kl_to_base" not in watch.results[0]  # a plain model has no base to compare with
    assert any(r.levelno == logging.WARNING and "same words" in r.getMessage()
               for r in caplog.records)


def test_callback_is_quiet_on_varied_samples_and_keeps_the_training_rng(tiny_model_dir, caplog):
    import torch
    from transformers import TrainerControl, TrainerState

    prompts = [f"Story {i}: the {w}" for i, w in enumerate("cat dog sun rain sea hill".split())]
    model, watch = _callback(tiny_model_dir, prompts, do_sample=True, top_k=0)
    state = TrainerState()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING, logger="lmforge.rl.diagnostics"):
        watch.on_train_begin(None, state, TrainerControl(), model=model)
    assert torch.equal(torch.rand(3), expected)  # sampled with its own seed
    assert watch.results[0]["top_opening_share"] <= 2 / 6
    assert not caplog.records
    assert watch.summary()["diag_collapsed"] is False


def test_drift_from_the_base_is_warned_where_distinct_n_sees_nothing(tiny_model_dir, caplog):
    """Varied samples (no stock phrase) from a policy far from its reference: only the KL per
    token catches it (the word-salad kind of reward hacking)."""
    import torch
    from transformers import AutoModelForCausalLM, TrainerControl, TrainerState

    prompts = [f"Story {i}: the {w}" for i, w in enumerate("cat dog sun rain sea hill".split())]
    model, watch = _callback(tiny_model_dir, prompts, do_sample=True, top_k=0)
    far = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        far.lm_head.weight.mul_(-20.0)  # the reference prefers what the policy avoids
    watch.reference, watch.drift_threshold = far, 0.5
    with caplog.at_level(logging.WARNING, logger="lmforge.rl.diagnostics"):
        watch.on_train_begin(None, TrainerState(), TrainerControl(), model=model)
    found = watch.results[0]
    assert found["top_opening_share"] <= 2 / 6  # no collapse to see
    assert found["kl_per_token"] > 0.5
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("nats per token" in m for m in messages)
    assert not any("same words" in m for m in messages)
    assert watch.summary()["diag_drifted"] is True

    model, near = _callback(tiny_model_dir, prompts, do_sample=True, top_k=0)
    near.reference, near.drift_threshold = AutoModelForCausalLM.from_pretrained(tiny_model_dir), 0.5
    near.on_train_begin(None, TrainerState(), TrainerControl(), model=model)
    assert near.results[0]["kl_per_token"] == pytest.approx(0.0, abs=1e-5)
    assert near.summary()["diag_drifted"] is False
