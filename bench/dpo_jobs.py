"""DPO jobs: lmforge's ``dpo`` stage (trl's DPOTrainer underneath, set up by lmforge) against
trl's ``DPOTrainer`` used directly with its defaults (gradient checkpointing on), on the same
pairs, LoRA adapter, batch size, learning rate and beta. Trained tokens are the chosen and
rejected completion tokens (trl's completion mask); quality is the final DPO loss and the
reward accuracy logged by trl (the mean over the last quarter of the steps)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.measure import Recorder


def _dpo_metrics(rec: Recorder, history: list[dict], model, spec: dict) -> dict:
    out = rec.summary(spec.get("warmup_steps", 1))
    acc = [h["rewards/accuracies"] for h in history if "rewards/accuracies" in h]
    if acc:
        k = max(1, len(acc) // 4)
        out["final_reward_accuracy"] = sum(acc[-k:]) / k
    out["parameters"] = sum(p.numel() for p in model.parameters())
    return out


def lmforge_dpo(spec: dict, workdir: Path) -> dict:
    from transformers import TrainerCallback

    from lmforge import stages
    from lmforge.config import validate

    rec = Recorder()
    rec.install()
    grabbed = {}

    class Grab(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kwargs):
            grabbed["model"] = model

    cfg = validate({
        "stage": "dpo", "model": {"path": spec["model"]},
        "adapter": dict(spec["lora"], type="lora"),
        "data": {"train": spec["train_file"], "format": "preference",
                 "max_length": spec["max_length"], "cache": False},
        "dpo": {"beta": spec["beta"], "loss": "sigmoid"},
        "train": {"output_dir": str(workdir / "run"), "epochs": spec.get("epochs", 1.0),
                  "batch_size": spec["batch_size"], "learning_rate": spec["lr"],
                  "lr_scheduler": "linear", "logging_steps": 1, "save_steps": 100000,
                  "report_to": ["none"], "seed": spec["seed"], "num_threads": spec["threads"]}})
    result = stages.run(cfg, callbacks=[rec.callback(), Grab()])
    return _dpo_metrics(rec, result.log_history, grabbed["model"], spec)


def trl_dpo(spec: dict, workdir: Path) -> dict:
    import datasets
    import torch
    from trl import DPOConfig, DPOTrainer

    from bench.train_jobs import _common_args, _load, _lora

    torch.set_num_threads(spec["threads"])
    rec = Recorder()
    rec.install()
    model, tokenizer = _load(spec)
    rows = [json.loads(x) for x in Path(spec["train_file"]).read_text().splitlines() if x]
    data = datasets.Dataset.from_list([
        {"prompt": [{"role": "user", "content": r["prompt"]}],
         "chosen": [{"role": "assistant", "content": r["chosen"]}],
         "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])
    args = DPOConfig(max_length=spec["max_length"], beta=spec["beta"],
                     **_common_args(spec, workdir))
    trainer = DPOTrainer(model=model, args=args, processing_class=tokenizer, train_dataset=data,
                         peft_config=_lora(spec), callbacks=[rec.callback()])
    trainer.train()
    out = _dpo_metrics(rec, trainer.state.log_history, trainer.model, spec)
    out["gradient_checkpointing"] = args.gradient_checkpointing
    return out
