"""Training jobs (SFT and pretraining), one per trainer, each run in its own worker process.

Every job gets the same spec: model, data files, LoRA settings, batch size, learning rate,
scheduler, epochs, max_length, seed, threads, precision (the harness fixes it for every tool,
like the batch size). Each uses its tool the way a user would:

- ``lmforge``: the ``sft`` / ``pt`` stage from a run config (the same code as ``lmforge train``)
  at its defaults, plus the scenario's data settings (``spec["lmforge_data"]``: packing);
- ``trl``: ``trl.SFTTrainer`` given conversational prompt/completion rows (or raw text) and a
  peft ``LoraConfig``; ``settings: defaults`` keeps its defaults (gradient checkpointing on,
  padding to the longest in the batch), ``fair`` switches checkpointing off; ``packing`` scenarios
  set ``packing=True`` (its best-fit-decreasing packing, padding-free);
- ``hf``: transformers' ``Trainer`` on the rows lmforge's pipeline encodes (identical tokens and
  labels), with a plain padding collator (``DataCollatorForSeq2Seq``) and a peft model.

Every job saves its adapter (or model) to ``spec["save_dir"]``; ``eval_saved`` then scores it in
a fresh process on the same held-out rows (lmforge's encoding and masking) with the same code,
the loss per trained token: one yardstick for every tool, LLaMA-Factory's included.
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
             "seed": spec["seed"], "num_threads": spec["threads"],
             "precision": spec.get("precision", "fp32")}
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


def _finish(rec: Recorder, model, spec: dict, extra: dict | None = None) -> dict:
    out = rec.summary(spec.get("warmup_steps", 1))
    out["parameters"] = sum(p.numel() for p in model.parameters())
    out.update(extra or {})
    return out


def eval_saved(spec: dict, workdir: Path) -> dict:
    """The held-out loss of the adapter (or full model) a training job saved in
    ``spec["save_dir"]``: loaded with peft onto the base model, fp32, lmforge's encoding."""
    import torch
    from transformers import AutoModelForCausalLM

    saved = Path(spec["save_dir"])
    if (saved / "adapter_config.json").is_file():
        from peft import PeftModel

        base, tokenizer = _load(spec)
        model = PeftModel.from_pretrained(base, str(saved))
    else:  # a full model; the tokenizer is the base model's
        from transformers import AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(saved, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(_base_path(spec))
    rows = encoded(spec, spec["eval_file"])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return {"eval_loss": eval_loss(model, rows, pad), "eval_rows": len(rows),
            "eval_tokens": sum(sum(1 for x in r["labels"][1:] if x != -100) for r in rows)}


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

    out = Path(spec["save_dir"])
    cfg = validate(_run_config(spec, spec["train_file"], str(out), spec.get("lmforge", {})))
    result = stages.run(cfg, callbacks=[rec.callback(), Grab()])
    packing = json.loads((out / "data_stats.json").read_text()).get("packing")
    return _finish(rec, grabbed["model"], spec,
                   {"train_loss": result.metrics.get("train_loss"), "packing": packing})


def _lora(spec: dict):
    from peft import LoraConfig

    lora = spec["lora"]
    return LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                      target_modules=lora["target_modules"], task_type="CAUSAL_LM")


def _base_path(spec: dict) -> str:
    from lmforge.utils.builtin import resolve

    return str(resolve(spec["model"])) if spec["model"].startswith("builtin:") else spec["model"]


def _load(spec: dict):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = _base_path(spec)
    torch.manual_seed(spec["seed"])
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), \
        AutoTokenizer.from_pretrained(path)


def _common_args(spec: dict, workdir: Path) -> dict:
    import torch

    bf16 = spec.get("precision", "fp32") == "bf16"
    return dict(output_dir=str(workdir / "out"), use_cpu=not torch.cuda.is_available(),
                bf16=bf16,
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


def count_trl_fused_head(rec: Recorder) -> bool:
    """trl's SFTTrainer projects hidden states onto the vocabulary with its own chunked
    log-prob function (``lm_head.weight`` used directly, so no module hook sees it; the backward
    computes each logits tile again). Count its rows for the executed FLOPs; False where this
    trl has no such function (the LM head hook then counts)."""
    import torch

    try:
        from trl.kernels.chunked_logprob import ChunkedLogProbFunction as fused
    except ImportError:
        return False
    original = fused.apply

    def apply(hidden, *args):
        if rec.probe is not None and torch.is_grad_enabled():
            rec.probe.head_positions += hidden.shape[0]
            rec.probe.head_recompute += hidden.shape[0]
        return original(hidden, *args)

    fused.apply = apply
    return True


def trl_sft(spec: dict, workdir: Path) -> dict:
    import datasets
    import torch
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(spec["threads"])
    rec = Recorder()
    rec.install()
    fused_head = count_trl_fused_head(rec)
    model, tokenizer = _load(spec)
    settings = spec.get("settings", "defaults")
    extra = {"gradient_checkpointing": False} if settings == "fair" else {}
    if spec.get("packing"):
        extra["packing"] = True
    args = SFTConfig(max_length=spec["max_length"], **_common_args(spec, workdir), **extra)
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                         train_dataset=datasets.Dataset.from_list(trl_rows(spec)),
                         peft_config=_lora(spec) if spec.get("lora") else None,
                         callbacks=[rec.callback()])
    out = trainer.train()
    trainer.save_model(spec["save_dir"])
    return _finish(rec, trainer.model, spec, {"train_loss": out.training_loss,
                                              "settings": settings, "fused_head": fused_head})


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
    trainer.save_model(spec["save_dir"])
    return _finish(rec, trainer.model, spec, {"train_loss": out.training_loss})
