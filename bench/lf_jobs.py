"""LLaMA-Factory, run for real: its SFT workflow in its own pinned venv (``make bench-peers``).

The worker runs in ``.venv-llamafactory`` (bench/peers.py) and calls ``run_exp`` with the
arguments a user would put in the YAML file of ``llamafactory-cli train`` (the CLI calls the
same function on one device); the YAML is written next to the adapter so the run can be
repeated by hand. The dataset goes in through LLaMA-Factory's own ``dataset_info.json``
(alpaca formatting: instruction / input / output).

Settings: ``defaults`` sets only what every tool of the scenario gets (model, data, LoRA r8
alpha 16 on all linear layers, batch size, learning rate and schedule, epochs, seed, the
sequence length as ``cutoff_len``, the precision) and leaves LLaMA-Factory's defaults on:
gradient checkpointing, padding to the longest row rounded up to a multiple of 8, no length
grouping. ``fair`` also switches checkpointing off (``disable_gradient_checkpointing``), as
lmforge runs by default. Packing scenarios use ``neat_packing`` (packing without
cross-attention between examples, the strongest of its packing modes on a CPU).

Nothing here imports lmforge: it is not installed in LLaMA-Factory's venv.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.measure import Recorder

DATASET = "bench_train"
ALPACA = ("instruction", "input", "output")


def lf_dataset(train_file: str | Path, data_dir: Path) -> str:
    """Write the training rows (alpaca keys only) and LLaMA-Factory's ``dataset_info.json``
    into ``data_dir``; returns the dataset name to put in the arguments."""
    data_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, line in enumerate(Path(train_file).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        missing = [k for k in ("instruction", "output") if k not in row]
        if missing:
            raise ValueError(f"{train_file}:{n}: alpaca row without {', '.join(missing)}")
        rows.append({k: row.get(k, "") for k in ALPACA})
    (data_dir / "train.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    info = {DATASET: {"file_name": "train.jsonl", "formatting": "alpaca",
                      "columns": {"prompt": "instruction", "query": "input",
                                  "response": "output"}}}
    (data_dir / "dataset_info.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    return DATASET


def lf_args(spec: dict, data_dir: Path, out_dir: Path) -> dict:
    """The ``llamafactory-cli train`` arguments of a job spec (see the module docstring)."""
    lora = spec["lora"]
    if lora["target_modules"] != "all-linear":
        raise ValueError(f"lora.target_modules {lora['target_modules']!r}: the LLaMA-Factory "
                         f"job maps only 'all-linear' (its lora_target: all)")
    settings = spec.get("settings", "defaults")
    if settings not in ("defaults", "fair"):
        raise ValueError(f"settings {settings!r}: choose 'defaults' or 'fair'")
    args = {
        "model_name_or_path": str(spec["model_path"]), "stage": "sft", "do_train": True,
        "finetuning_type": "lora", "lora_target": "all", "lora_rank": lora["r"],
        "lora_alpha": lora["alpha"], "lora_dropout": lora["dropout"],
        "dataset": DATASET, "dataset_dir": str(data_dir), "template": spec["lf_template"],
        "cutoff_len": spec["max_length"], "overwrite_cache": True,
        "output_dir": str(out_dir), "overwrite_output_dir": True,
        "per_device_train_batch_size": spec["batch_size"], "gradient_accumulation_steps": 1,
        "learning_rate": spec["lr"], "lr_scheduler_type": spec.get("scheduler", "linear"),
        "num_train_epochs": spec.get("epochs", 1.0), "max_steps": spec.get("max_steps", -1),
        "seed": spec["seed"], "logging_steps": 1, "save_strategy": "no", "report_to": "none",
        "disable_tqdm": True, "bf16": spec.get("precision", "fp32") == "bf16",
    }
    if spec.get("packing"):
        args.update(packing=True, neat_packing=True)
    if settings == "fair":
        args["disable_gradient_checkpointing"] = True
    return args


def lf_sft(spec: dict, workdir: Path) -> dict:
    import yaml
    from llamafactory.extras.env import VERSION
    from llamafactory.train.tuner import run_exp

    out_dir = Path(spec["save_dir"])
    os.environ["HF_DATASETS_CACHE"] = str(workdir / "datasets-cache")  # nothing reused
    args = lf_args(spec, workdir / "data", out_dir)
    lf_dataset(spec["train_file"], workdir / "data")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "llamafactory.yaml").write_text(yaml.safe_dump(args, sort_keys=False))
    rec = Recorder()
    rec.install()
    run_exp(args=dict(args), callbacks=[rec.callback()])
    out = rec.summary(spec.get("warmup_steps", 1))
    out.update(parameters=rec.probe.parameters if rec.probe else None,
               llamafactory_version=VERSION, settings=spec.get("settings", "defaults"),
               arguments=args)
    return out
