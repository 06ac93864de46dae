"""Training jobs (SFT and pretraining), one per trainer, each run in its own worker process.

Every job gets the same spec: model, data files, LoRA settings, batch size, learning rate,
scheduler, epochs, max_length, seed, threads. Each uses its tool the way a user would:

- ``lmforge``: the ``sft`` / ``pt`` stage from a run config (the same code as ``lmforge train``),
  with the speed settings of the scenario (``spec["lmforge"]``: packing, group_by_length, ...);
- ``trl``: ``trl.SFTTrainer`` with its defaults (gradient checkpointing on, padding to the longest
  in the batch, its fused LM head), given conversational prompt/completion rows (or raw text),
  and a peft ``LoraConfig``; only ``use_cpu`` / ``bf16=False`` are set because the CPU needs them;
- ``hf``: transformers' ``Trainer`` on the rows lmforge's pipeline encodes (identical tokens and
  labels), with a plain padding collator (``DataCollatorForSeq2Seq``) and a peft model.

After training, every model is scored on the same held-out rows (lmforge's encoding) with the
same code: the loss per trained token, so quality is compared on one yardstick.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.measure import Recorder


def _records(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()
            if line.strip()]


def _run_config(spec: dict, train_file: str, out: str, extra_train: dict | None = None) -> dict:
    data = {"train": train_file, "format": spec["format"], "max_length": spec["max_length"],
            "cache": False}
    data.update(spec.get("lmforge_data", {}))
    train = {"output_dir": out, "epochs": spec.get("epochs", 1.0),
             "max_steps": spec.get("max_steps", -1), "batch_size": spec["batch_size"],
             "learning_rate": spec["lr"], "lr_scheduler": spec.get("scheduler", "linear"),
             "logging_steps": 1, "save_steps": 100000, "report_to": ["none"],
             "seed": spec["seed"], "num_threads": spec["threads"]}
    train.update(extra_train or {})
    cfg = {"stage": spec["stage"], "model": {"path": spec["model"]}, "data": data, "train": train}
    cfg["adapter"] = dict(spec["lora"], type="lora") if spec.get("lora") else {"type": "full"}
    return cfg


def encoded(spec: dict, file: str) -> list[dict]:
    """Rows of ``file`` encoded by lmforge's pipeline (input_ids + labels), not packed."""
    from lmforge.config import validate
    from lmforge.data import pipeline
    from lmforge.data.templates import resolve_template
    from lmforge.model.loader import load_tokenizer

    cfg = validate(_run_config(spec, file, "/tmp/unused"))
    tokenizer = load_tokenizer(cfg.model)
    template = None if spec["format"] == "text" else resolve_template("auto", tokenizer)
    built = pipeline.build(cfg, tokenizer, template)
    return [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in built.train]


def eval_loss(model, rows: list[dict], pad_id: int, batch: int = 8) -> float:
    """Mean loss per trained token of ``rows`` (a no-grad pass; the common yardstick)."""
    import torch
    import torch.nn.functional as F

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(rows), batch):
            chunk = rows[s:s + batch]
            width = max(len(r["input_ids"]) for r in chunk)
            ids = torch.tensor([r["input_ids"] + [pad_id] * (width - len(r["input_ids"]))
                                for r in chunk])
            labels = torch.tensor([r["labels"] + [-100] * (width - len(r["labels"]))
                                   for r in chunk])
            mask = (torch.arange(width)[None, :] < torch.tensor(
                [len(r["input_ids"]) for r in chunk])[:, None]).long()
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                                   reduction="sum", ignore_index=-100)
            total += float(loss)
            count += int((labels[:, 1:] != -100).sum())
    return total / max(count, 1)


def _finish(rec: Recorder, model, spec: dict, pad_id: int, extra: dict | None = None) -> dict:
    out = rec.summary(spec.get("warmup_steps", 1))
    out["parameters"] = sum(p.numel() for p in model.parameters())
    out["eval_loss"] = eval_loss(model, encoded(spec, spec["eval_file"]), pad_id)
    out.update(extra or {})
    return out


def lmforge_lm(spec: dict, workdir: Path) -> dict:
    from lmforge import stages
    from lmforge.config import validate
    from transformers import TrainerCallback

    rec = Recorder()
    rec.install()
    grabbed = {}

    class Grab(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kwargs):
            grabbed["model"] = model

    cfg = validate(_run_config(spec, spec["train_file"], str(workdir / "run"),
                               spec.get("lmforge", {})))
    result = stages.run(cfg, callbacks=[rec.callback(), Grab()])
    packing = json.loads((workdir / "run" / "data_stats.json").read_text()).get("packing")
    pad = grabbed["model"].config.pad_token_id
    return _finish(rec, grabbed["model"], spec, pad if pad is not None else 0,
                   {"train_loss": result.metrics.get("train_loss"), "packing": packing})


def _lora(spec: dict):
    from peft import LoraConfig

    lora = spec["lora"]
    return LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                      target_modules=lora["target_modules"], task_type="CAUSAL_LM")


def _load(spec: dict):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmforge.utils.builtin import resolve

    path = resolve(spec["model"]) if spec["model"].startswith("builtin:") else spec["model"]
    torch.manual_seed(spec["seed"])
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), \
        AutoTokenizer.from_pretrained(path)


def _common_args(spec: dict, workdir: Path) -> dict:
    return dict(output_dir=str(workdir / "out"), use_cpu=True, bf16=False,
                per_device_train_batch_size=spec["batch_size"], learning_rate=spec["lr"],
                num_train_epochs=spec.get("epochs", 1.0), max_steps=spec.get("max_steps", -1),
                lr_scheduler_type=spec.get("scheduler", "linear"), seed=spec["seed"],
                logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True)


def trl_rows(spec: dict) -> list[dict]:
    """The user-facing rows trl takes: conversational prompt/completion, or raw text."""
    rows = _records(spec["train_file"])
    if spec["format"] == "text":
        return [{"text": r["text"]} for r in rows]
    out = []
    for r in rows:
        prompt = r["instruction"] + ("\n\n" + r["input"] if r.get("input") else "")
        out.append({"prompt": [{"role": "user", "content": prompt}],
                    "completion": [{"role": "assistant", "content": r["output"]}]})
    return out


def trl_sft(spec: dict, workdir: Path) -> dict:
    import datasets
    import torch
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(spec["threads"])
    rec = Recorder()
    rec.install()
    model, tokenizer = _load(spec)
    args = SFTConfig(max_length=spec["max_length"], **_common_args(spec, workdir))
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                         train_dataset=datasets.Dataset.from_list(trl_rows(spec)),
                         peft_config=_lora(spec) if spec.get("lora") else None,
                         callbacks=[rec.callback()])
    out = trainer.train()
    return _finish(rec, trainer.model, spec, tokenizer.pad_token_id,
                   {"train_loss": out.training_loss,
                    "gradient_checkpointing": args.gradient_checkpointing})


def hf_trainer(spec: dict, workdir: Path) -> dict:
    import datasets
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    torch.set_num_threads(spec["threads"])
    rec = Recorder()
    rec.install()
    rows = encoded(spec, spec["train_file"])
    model, tokenizer = _load(spec)
    model.config.use_cache = False
    if spec.get("lora"):
        from peft import get_peft_model

        model = get_peft_model(model, _lora(spec))
    trainer = Trainer(model=model, args=TrainingArguments(**_common_args(spec, workdir)),
                      train_dataset=datasets.Dataset.from_list(rows),
                      data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True,
                                                           label_pad_token_id=-100),
                      callbacks=[rec.callback()])
    out = trainer.train()
    return _finish(rec, trainer.model, spec, tokenizer.pad_token_id,
                   {"train_loss": out.training_loss})
