"""Raw-text prompts for ppo/grpo (``prompt_template: raw``): the policy continues the row's text
itself, with no chat template around it; chat prompts stay the default."""

from __future__ import annotations

import sys

import pytest

from lmforge import stages
from lmforge.errors import ConfigError, DataError
from tests.conftest import write_jsonl
from tests.integration.rl_toys import config, example, write_rewards

TEMPLATE_MARKS = ("<|im_start|>", "<|im_end|>", "user\n", "assistant")

RECORDER = '''
SEEN = []


def record(completions, prompts, **columns):
    SEEN.extend(prompts)
    return [0.0 for _ in completions]
'''


def _openings(tmp_path, n=8):
    rows = [{"prompt": f"The film opens on a {w} morning and"} for w in
            ("quiet", "rainy", "bright", "cold", "late", "grey", "warm", "still")][:n]
    return {"train": str(write_jsonl(tmp_path / "openings.jsonl", rows)), "format": "prompt",
            "max_length": 64}


@pytest.fixture
def recorder(tmp_path, monkeypatch):
    (tmp_path / "raw_recorder.py").write_text(RECORDER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "raw_recorder", raising=False)
    yield "raw_recorder:record"
    import raw_recorder

    raw_recorder.SEEN.clear()


def test_chat_stays_the_default():
    from lmforge.config.methods import GRPOMethod, PPOMethod

    assert GRPOMethod(reward_functions=["sentiment"]).prompt_template == "chat"
    assert PPOMethod(reward_functions=["sentiment"]).prompt_template == "chat"


def test_raw_prompts_refuse_a_system_prompt(tmp_path):
    with pytest.raises(ConfigError, match="data.system: not used: grpo.prompt_template is raw"):
        config(example("grpo"), tmp_path, data={**_openings(tmp_path), "system": "Be kind."},
               grpo={"prompt_template": "raw"})


def test_raw_prompt_of_a_chat_row_is_a_data_error(tiny_tokenizer):
    from lmforge.data.prompts import PromptExample, rl_prompt_text

    chat = PromptExample(({"role": "system", "content": "s"}, {"role": "user", "content": "u"}),
                         where="rows.jsonl:3")
    with pytest.raises(DataError, match="raw prompt is one text"):
        rl_prompt_text(chat, "raw", "", tiny_tokenizer)
    one = PromptExample(({"role": "user", "content": "It was a"},))
    text = rl_prompt_text(one, "raw", "", tiny_tokenizer)
    assert text.endswith("It was a") and not any(m in text for m in TEMPLATE_MARKS)


def test_raw_prompt_keeps_the_bos_a_tokenizer_adds_itself():
    from lmforge.data.prompts import raw_prompt_text

    class AddsBos:
        bos_token, bos_token_id = "<s>", 1

        def __call__(self, text):
            return {"input_ids": [1, 5]}

    msgs = ({"role": "user", "content": "It was"},)
    assert raw_prompt_text(msgs, AddsBos()) == "<s>It was"


def test_grpo_rollouts_continue_the_raw_text(tmp_path, recorder):
    import raw_recorder

    cfg = config(example("grpo"), tmp_path, data=_openings(tmp_path),
                 grpo={"reward_functions": [recorder], "prompt_template": "raw",
                       "max_new_tokens": 4, "reward_paths": [str(tmp_path)]},
                 train={"max_steps": 1, "batch_size": 8, "save_steps": 1})
    stages.run(cfg)
    assert raw_recorder.SEEN, "the reward never saw a prompt"
    for prompt in raw_recorder.SEEN:
        assert prompt.startswith("The film opens on a ") and prompt.endswith(" morning and")
        assert not any(m in prompt for m in TEMPLATE_MARKS), prompt


def test_ppo_rollouts_continue_the_raw_text(tmp_path, recorder, tiny_tokenizer):
    import raw_recorder

    from lmforge.stages.ppo import load_prompt_sets

    rewards = write_rewards(tmp_path)
    cfg = config(example("ppo"), tmp_path, data={**_openings(tmp_path), "eval": None},
                 ppo={"reward_functions": [recorder, f"{rewards}:digit_share"],
                      "prompt_template": "raw", "max_new_tokens": 4,
                      "reward_paths": [str(tmp_path)]},
                 train={"max_steps": 1, "batch_size": 8, "save_steps": 1})
    train, _, _ = load_prompt_sets(cfg, tiny_tokenizer, "unused: raw prompts have no template")
    assert train.texts[0].endswith("The film opens on a quiet morning and")
    assert train.ids[0] == tiny_tokenizer(train.texts[0], add_special_tokens=False)["input_ids"]
    stages.run(cfg)
    assert len(raw_recorder.SEEN) == 8
    for prompt in raw_recorder.SEEN:
        assert prompt.startswith("The film opens on a ")  # the tiny tokenizer adds no BOS
        assert not any(m in prompt for m in TEMPLATE_MARKS), prompt
