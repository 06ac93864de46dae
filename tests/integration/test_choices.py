"""``eval.mode: choices`` on the tiny model: the shared-prompt batched scores equal log-probs
computed naively one (prompt, answer) at a time, the pick is their argmax, a model forced to
prefer an answer picks it, and ``evaluate`` reports the same metrics as for generation."""

from __future__ import annotations

import pytest
import torch

from lmforge.eval.runner import Sample

CHOICES = ["apple", "banana split", "cherry", "kiwi"]
SAMPLES = [Sample([{"role": "user", "content": "pick a fruit"}], "cherry"),
           Sample([{"role": "user", "content": "which fruit is yellow and long, and comes "
                                               "in bunches at the market?"}], "banana split"),
           Sample([{"role": "system", "content": "be brief"},
                   {"role": "user", "content": "red"}, {"role": "assistant", "content": "apple"},
                   {"role": "user", "content": "green?"}], "kiwi"),
           Sample([{"role": "user", "content": "one"}], "apple"),
           Sample([{"role": "user", "content": "two three four five"}], "cherry")]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from lmforge.infer.engine import ChatEngine

    torch.set_num_threads(1)
    return ChatEngine.load(str(tiny_model_dir), batch_size=3)  # batches of mixed lengths


def naive(engine, sample, choice) -> float:
    """Full forward of prompt + answer alone (no padding, no cache), summed answer log-probs."""
    from lmforge.eval.choices import pairs_for

    (prompt, answer), = pairs_for(engine, sample.messages, [choice])
    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        logp = torch.log_softmax(engine.model(input_ids=ids).logits[0].float(), dim=-1)
    return sum(logp[len(prompt) - 1 + k, t].item() for k, t in enumerate(answer))


def test_scores_equal_naive_one_by_one_and_pick_the_argmax(engine):
    from lmforge.eval.choices import choose

    picked = choose(engine, SAMPLES, CHOICES)
    for s, (best, scores) in zip(SAMPLES, picked):
        expected = {c: naive(engine, s, c) for c in CHOICES}
        assert list(scores) == CHOICES
        for c in CHOICES:
            assert scores[c] == pytest.approx(expected[c], abs=1e-4)
        assert best == max(CHOICES, key=lambda c: expected[c])


def test_cached_path_equals_the_one_by_one_fallback(engine):
    from lmforge.eval.choices import _cached, pairs_for

    rows = [pairs_for(engine, s.messages, CHOICES) for s in SAMPLES[:3]]
    cached = _cached(engine, rows)
    plain = [[sum(x) for x in engine.loglikelihood(r)] for r in rows]
    torch.testing.assert_close(torch.tensor(cached), torch.tensor(plain), atol=1e-4, rtol=0)


@pytest.mark.parametrize("attention", ["sdpa", "eager", "repeated cache"])
def test_each_answer_pass_equals_the_one_by_one_fallback(engine, attention, monkeypatch):
    """The one-row-per-prompt pass under a 4-D mask (sdpa, eager) and the repeated-cache pass
    (other attention kinds) give the one-by-one scores; multi-token answers of unequal lengths,
    prompts of unequal lengths (left padding)."""
    from lmforge.eval import choices

    rows = [choices.pairs_for(engine, s.messages, CHOICES) for s in SAMPLES[:3]]
    assert len({len(a) for _, a in rows[0]}) > 1 and len({len(r[0][0]) for r in rows}) > 1
    plain = [[sum(x) for x in engine.loglikelihood(r)] for r in rows]
    if attention == "repeated cache":
        monkeypatch.setattr(choices, "mask_kind", lambda model: None)
    else:
        monkeypatch.setattr(engine.model.config, "_attn_implementation", attention)
        assert choices.mask_kind(engine.model) == attention
    torch.testing.assert_close(torch.tensor(choices._cached(engine, rows)), torch.tensor(plain),
                               atol=1e-4, rtol=0)


def test_a_model_forced_to_prefer_an_answer_picks_it(engine):
    from lmforge.eval.choices import choose, pairs_for

    for wanted in ("kiwi", "banana split"):
        (_, answer), = pairs_for(engine, SAMPLES[0].messages, [wanted])
        bonus = torch.zeros(engine.model.config.vocab_size)
        bonus[answer[:-1]] = 8.0  # the answer's tokens (not the shared end-of-turn) get +8

        def hook(module, args, output, bonus=bonus):
            return output + bonus

        handle = engine.model.get_output_embeddings().register_forward_hook(hook)
        try:
            picked = choose(engine, SAMPLES, CHOICES)
        finally:
            handle.remove()
        assert [best for best, _ in picked] == [wanted] * len(SAMPLES)


def test_lora_model_shares_the_prompt_cache_exactly(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmforge.data.templates import resolve_template
    from lmforge.eval.choices import choose
    from lmforge.infer.engine import ChatEngine

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                      init_lora_weights=False))
    lora = ChatEngine(model, tok, resolve_template("auto", tok), batch_size=2)
    for s, (best, scores) in zip(SAMPLES, choose(lora, SAMPLES, CHOICES)):
        expected = {c: naive(lora, s, c) for c in CHOICES}
        assert all(scores[c] == pytest.approx(expected[c], abs=1e-4) for c in CHOICES)
        assert best == max(CHOICES, key=lambda c: expected[c])


def test_evaluate_in_choices_mode_reports_label_metrics(engine):
    from lmforge.config.eval import EvalConfig
    from lmforge.eval.choices import choice_set
    from lmforge.eval.metrics import accuracy
    from lmforge.eval.runner import evaluate

    assert choice_set(SAMPLES, None) == ["apple", "banana split", "cherry", "kiwi"]
    ecfg = EvalConfig(metrics=["accuracy", "f1"], mode="choices")
    metrics, records = evaluate(engine, SAMPLES, ecfg)
    assert all(r["prediction"] in CHOICES and r["extracted"] == r["prediction"] for r in records)
    assert all(set(r["choice_scores"]) == set(CHOICES) for r in records)
    assert metrics["accuracy"] == accuracy([r["prediction"] for r in records],
                                           [s.reference for s in SAMPLES])
    assert 0 <= metrics["f1"] <= 1
    # eval.choices restricts the set: every answer is one of them
    ecfg = EvalConfig(metrics=["accuracy"], mode="choices", choices=["kiwi", "apple"])
    _, records = evaluate(engine, SAMPLES, ecfg)
    assert {r["prediction"] for r in records} <= {"kiwi", "apple"}


@pytest.mark.parametrize("tree,message", [
    ({"choices": ["a", "b"]}, "used by mode: choices"),
    ({"mode": "choices", "choices": ["a", "a"]}, "distinct"),
    ({"mode": "choices", "choices": []}, "distinct"),
    ({"mode": "choices", "generation": {"num_return_sequences": 3, "do_sample": True}},
     "num_return_sequences"),
])
def test_invalid_choice_settings(tree, message):
    from lmforge.config.eval import EvalConfig

    with pytest.raises(ValueError, match=message):
        EvalConfig(**tree)
