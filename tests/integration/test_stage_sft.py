"""Stage sft on the tiny model: LoRA and full (packed) runs, what they save, the eval hooks."""

from __future__ import annotations

import json
import sys
import types

import pytest

from tests.conftest import REPO

TOY = str(REPO / "examples/data/toy_train.jsonl")
TOY_EVAL = str(REPO / "examples/data/toy_eval.jsonl")


def _cfg(tiny_model_dir, out, adapter="full", data=None, eval_=None, **train):
    from lmforge.config import validate

    t = {"output_dir": str(out), "learning_rate": 5e-3, "logging_steps": 1, "save_steps": 5,
         "max_steps": 10, "batch_size": 8, "report_to": ["none"], "num_threads": 1}
    t.update(train)
    d = {"train": TOY, "format": "alpaca", "max_length": 64}
    d.update(data or {})
    return validate({"stage": "sft", "model": {"path": str(tiny_model_dir)},
                     "adapter": {"type": adapter}, "data": d, "train": t, "eval": eval_ or {}})


def _losses(result):
    return [h["loss"] for h in result.log_history if "loss" in h]


def test_lora_sft_saves_adapter_tokenizer_template_and_checkpoints(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from lmforge.data.templates import resolve_template
    from lmforge.stages import run

    out = tmp_path / "lora"
    result = run(_cfg(tiny_model_dir, out, adapter="lora", learning_rate=1e-2))
    losses = _losses(result)
    assert losses[-1] < losses[0]
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    assert not (out / "model.safetensors").exists()  # the adapter only, not a merged copy
    for step in (5, 10):
        ckpt = out / f"checkpoint-{step}"
        for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"):
            assert (ckpt / name).is_file(), f"{ckpt.name}/{name}"
    lora_b = [v for k, v in load_file(str(out / "adapter_model.safetensors")).items()
              if "lora_B" in k]
    assert lora_b and any(float(v.abs().max()) > 0 for v in lora_b)  # B starts at zero
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template == resolve_template("auto", AutoTokenizer.from_pretrained(
        tiny_model_dir))
    gen = GenerationConfig.from_pretrained(out)
    eos = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    assert eos[0] == tok.convert_tokens_to_ids("<|im_end|>")
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out)
    assert any("lora_B" in name for name, _ in model.named_parameters())
    m = result.metrics
    assert 0 < m["trainable_parameters"] < m["total_parameters"]
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 10


def test_full_sft_with_packing_counts_trained_tokens_honestly(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    from lmforge.data import pipeline
    from lmforge.data.packing import pack_rows
    from lmforge.stages import run

    cfg = _cfg(tiny_model_dir, tmp_path / "packed", data={"packing": True, "eval": TOY_EVAL},
               epochs=1, max_steps=-1, eval_steps=4, save_steps=100)
    result = run(cfg)
    m = result.metrics
    assert m["train_rows"] < m["train_examples"]  # several examples per block
    losses = _losses(result)
    assert losses[-1] < losses[0]
    assert "eval_loss" in m and m["eval_loss"] < losses[0]
    # one epoch: the counted tokens are exactly the trained labels of the packed dataset
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    data = pipeline.build(cfg, tok, tok.chat_template)
    rows, _ = pack_rows(data.train["input_ids"], data.train["labels"], 64)
    expected = sum(sum(1 for x in lab[1:] if x != -100) for lab in rows["labels"])
    assert m["train_tokens"] == expected
    assert m["train_tokens_per_second"] == pytest.approx(expected / m["train_runtime"])
    assert (tmp_path / "packed" / "loss.png").stat().st_size > 1000
    # the KV cache is off while training (packing) but on in the saved model, for inference
    saved = json.loads((tmp_path / "packed" / "config.json").read_text())
    assert saved["use_cache"] is True


def test_eval_hooks_are_called_when_configured(tiny_model_dir, tmp_path, monkeypatch):
    """The contract with lmforge.eval.training: callbacks() at build time (run before the
    reporters), finalize() after training whose dict lands in metrics.json."""
    from transformers import TrainerCallback

    from lmforge.stages import run

    seen = {}

    class Recorder(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            seen.setdefault("evals", []).append(state.global_step)

    def callbacks(cfg, tokenizer, template, eval_examples):
        seen["examples"] = len(eval_examples)
        return [Recorder()]

    def finalize(trainer, cfg, out_dir):
        order = [type(c).__name__ for c in trainer.callback_handler.callbacks]
        reporters = [i for i, n in enumerate(order) if n.endswith(("TensorBoardCallback",
                                                                    "MLflowCallback",
                                                                    "WandbCallback"))]
        return {"hook_after_flow": order.index("Recorder") > order.index("DefaultFlowCallback"),
                "hook_before_reporters": all(order.index("Recorder") < i for i in reporters)}

    fake = types.ModuleType("lmforge.eval.training")
    fake.callbacks, fake.finalize = callbacks, finalize
    monkeypatch.setitem(sys.modules, "lmforge.eval.training", fake)
    result = run(_cfg(tiny_model_dir, tmp_path / "hooks", data={"eval": TOY_EVAL},
                      eval_={"best_metric": "eval_loss"}, max_steps=4, eval_steps=2,
                      save_steps=100))
    assert seen["examples"] == 40 and seen["evals"][:2] == [2, 4]
    # after DefaultFlowCallback, before the reporters, so metrics the hooks add get logged
    assert result.metrics["hook_after_flow"] and result.metrics["hook_before_reporters"]
