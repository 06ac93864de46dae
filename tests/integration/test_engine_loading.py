"""ChatEngine.load on what users point at: a LoRA run dir, a checkpoint in it, a base model with
--adapter, a plain model; each gives the model the run trained, with the run's template."""

from __future__ import annotations

import pytest
import torch

from lmforge.errors import ModelError
from lmforge.infer.engine import ChatEngine
from tests.conftest import write_jsonl

CHAT = [{"role": "user", "content": "is apple a word"}]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    from lmforge import stages
    from lmforge.config import validate

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("lorarun")
    write_jsonl(d / "train.jsonl", [{"instruction": f"q{i}", "output": "yes"} for i in range(8)])
    cfg = validate({"stage": "sft", "model": {"path": "builtin:tiny-llama"},
                    "adapter": {"type": "lora", "r": 4},
                    "data": {"train": str(d / "train.jsonl")},
                    "train": {"output_dir": str(d / "out"), "max_steps": 2, "save_steps": 2,
                              "learning_rate": 1e-2, "batch_size": 4, "report_to": ["none"],
                              "num_threads": 1}})
    stages.run(cfg)
    return d / "out"


def _logits(engine) -> torch.Tensor:
    ids = torch.tensor([engine.encode(engine.render(CHAT))])
    with torch.no_grad():
        return engine.model(input_ids=ids).logits[0, -1]


def test_run_dir_checkpoint_and_adapter_flag_load_the_same_model(lora_run, tiny_model_dir):
    from peft import PeftModel

    run = ChatEngine.load(str(lora_run))
    assert isinstance(run.model, PeftModel) and run.run_config is not None
    assert run.template == run.tokenizer.chat_template
    ckpt = ChatEngine.load(str(lora_run / "checkpoint-2"))
    flag = ChatEngine.load(str(tiny_model_dir), adapter=str(lora_run))
    base = ChatEngine.load(str(tiny_model_dir))
    want = _logits(run)
    assert torch.allclose(_logits(ckpt), want, atol=1e-5)
    assert torch.allclose(_logits(flag), want, atol=1e-5)
    assert not torch.allclose(_logits(base), want, atol=1e-3)  # the adapter is applied
    assert run.generate([CHAT], max_new_tokens=4)[0].text == \
        flag.generate([CHAT], max_new_tokens=4)[0].text


def test_bad_paths_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="no such directory"):
        ChatEngine.load(str(tmp_path / "missing"))
    with pytest.raises(ModelError, match="holds no model weights or adapter"):
        ChatEngine.load(str(tmp_path))
