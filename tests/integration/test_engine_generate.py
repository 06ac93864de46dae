"""ChatEngine on the tiny model: batching, streaming, scoring and perplexity agree with plain
one-at-a-time computations."""

from __future__ import annotations

import math

import pytest
import torch

from lmforge.eval.runner import Sample, reference_perplexity, split_ids
from lmforge.infer.engine import ChatEngine

CHATS = [[{"role": "user", "content": "hello there"}],
         [{"role": "user", "content": "what is the answer to the question of the day"}],
         [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a"}],
         [{"role": "user", "content": "one two three"}]]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    torch.set_num_threads(1)
    return ChatEngine.load(str(tiny_model_dir), batch_size=3)


def test_prompt_is_rendered_with_the_template(engine, tiny_tokenizer):
    text = engine.render(CHATS[0])
    assert text == tiny_tokenizer.apply_chat_template(CHATS[0], tokenize=False,
                                                      add_generation_prompt=True)
    assert engine.stop_ids[0] == tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_batched_left_padded_generation_equals_one_at_a_time(engine):
    batched = engine.generate(CHATS, max_new_tokens=6)
    single = [engine.generate([c], max_new_tokens=6)[0] for c in CHATS]
    assert [b.choices[0].token_ids for b in batched] == [s.choices[0].token_ids for s in single]
    assert [b.prompt_tokens for b in batched] == [len(engine.encode(engine.render(c)))
                                                  for c in CHATS]
    assert all(c.choices[0].finish_reason in ("stop", "length") for c in batched)


def test_stream_yields_the_same_text(engine):
    want = engine.generate([CHATS[1]], max_new_tokens=6)[0].text
    assert "".join(engine.stream(CHATS[1], max_new_tokens=6)) == want


def test_sampling_is_seeded_and_returns_n_answers(engine):
    a = engine.generate(CHATS[:2], do_sample=True, num_return_sequences=3, seed=5,
                        max_new_tokens=5, logprobs=True)
    b = engine.generate(CHATS[:2], do_sample=True, num_return_sequences=3, seed=5,
                        max_new_tokens=5, logprobs=True)
    assert [[c.text for c in x.choices] for x in a] == [[c.text for c in x.choices] for x in b]
    assert all(len(x.choices) == 3 for x in a)
    # the log-prob is the mean over the generated tokens of the model's own distribution
    ch = a[0].choices[0]
    prompt = engine.encode(engine.render(CHATS[0]))
    with torch.no_grad():
        logits = engine.model(torch.tensor([prompt + ch.token_ids])).logits[0]
    logp = torch.log_softmax(logits, -1)
    want = [logp[len(prompt) - 1 + k, t].item() for k, t in enumerate(ch.token_ids)]
    assert ch.logprob == pytest.approx(sum(want) / len(want), abs=1e-4)


def test_batched_loglikelihood_equals_single_rows(engine):
    pairs = [(engine.encode("short prompt"), engine.encode(" yes")),
             (engine.encode("a much longer prompt with many more words in it"),
              engine.encode(" the answer is four"))]
    together = engine.loglikelihood(pairs)
    alone = [engine.loglikelihood([p])[0] for p in pairs]
    for t, a in zip(together, alone):
        assert t == pytest.approx(a, abs=1e-4)


def test_reference_perplexity_equals_the_training_loss(engine):
    from lmforge.data.encode import encode_conversation
    from lmforge.data.types import Conversation

    msgs = CHATS[2] + [{"role": "assistant", "content": "sure, the answer is two"}]
    enc = encode_conversation(Conversation(tuple(msgs)), engine.tokenizer, engine.template)
    with torch.no_grad():
        loss = engine.model(input_ids=torch.tensor([enc.input_ids]),
                            labels=torch.tensor([enc.labels])).loss.item()
    ppl = reference_perplexity(engine, [Sample(msgs[:-1], msgs[-1]["content"])])
    assert math.log(ppl) == pytest.approx(loss, abs=1e-4)


def test_split_ids_is_one_tokenization(tiny_tokenizer):
    prompt, answer = "Answer:", " B"
    p, a = split_ids(tiny_tokenizer, prompt, answer)
    assert p + a == tiny_tokenizer(prompt + answer, add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.decode(a) == " B"


def test_stop_strings_in_generate_and_stream(engine):
    full = engine.generate([CHATS[3]], max_new_tokens=10)[0]
    text = full.text
    assert len(text) > 3, text
    stop = text[2:4]  # a stop string in the middle of the greedy answer
    cut = engine.generate([CHATS[3]], max_new_tokens=10, stop=[stop])[0].choices[0]
    assert cut.text == text[:text.find(stop)] and cut.finish_reason == "stop"
    assert "".join(engine.stream(CHATS[3], max_new_tokens=10, stop=[stop])) == cut.text
    # closing a stream early ends the generation and frees the engine
    it = engine.stream(CHATS[3], max_new_tokens=10)
    next(it)
    it.close()
    assert engine.generate([CHATS[3]], max_new_tokens=10)[0].text == text


def test_a_seed_does_not_touch_the_callers_random_state(engine):
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    engine.generate(CHATS[:1], do_sample=True, seed=5, max_new_tokens=3)
    assert torch.equal(torch.rand(3), want)


def test_sampling_settings_reach_transformers(engine):
    from lmforge.infer.engine import options

    config = engine._kwargs(options(do_sample=True, top_k=0, top_p=0.9, temperature=0.7))
    config = config["generation_config"]
    assert (config.top_k, config.top_p, config.temperature) == (0, 0.9, 0.7)  # 0 = off, not 50
    greedy = engine.generate(CHATS[:2], max_new_tokens=5)
    top1 = engine.generate(CHATS[:2], max_new_tokens=5, do_sample=True, top_k=1, seed=3)
    assert [c.text for c in top1] == [c.text for c in greedy]
