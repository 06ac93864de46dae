"""The benchmark scenarios: what each one runs (job specs, data written to the work dir).

``SCENARIOS[key].jobs(workdir, quick, threads)`` returns ``[(label, spec)]``; the first label is
lmforge, the others are the references it is compared with (report.py). ``--quick`` shrinks every
scenario to a smoke test (tests use it); the numbers of a quick run mean little.

The SFT scenarios (a, ap, b) run lmforge at its defaults against LLaMA-Factory and TRL twice each:
at their own defaults (gradient checkpointing on) and at speed-fair settings (checkpointing off;
the padding policy is the same for all: rows padded to the longest of a random batch, or packed in
``ap``). ``repeats`` of them run interleaved (runner.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench import data

LORA = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"}
SMOLLM2 = "builtin:smollm2-135m-instruct"


@dataclass(frozen=True)
class Scenario:
    key: str
    name: str
    title: str
    jobs: Callable[[Path, bool, int], list[tuple[str, dict]]]
    kind: str = "train"  # train | generate | preprocess | mfu
    repeats: int = 1  # interleaved repetitions of the scenario's jobs (--repeats overrides)


def sft_tools(base: dict, lf_template: str, packing: bool = False) -> list[tuple[str, dict]]:
    """lmforge at its defaults; LLaMA-Factory and TRL at their defaults and speed-fair."""
    from lmforge.utils.builtin import resolve

    model_path = str(resolve(base["model"])) if base["model"].startswith("builtin:") \
        else base["model"]
    lf = dict(base, job="lf_sft", python="llamafactory", model_path=model_path,
              lf_template=lf_template, packing=packing)
    trl = dict(base, job="trl_sft", packing=packing)
    return [("lmforge", dict(base, job="lmforge_lm",
                             lmforge_data={"packing": True} if packing else {})),
            ("LLaMA-Factory", dict(lf, settings="defaults")),
            ("TRL", dict(trl, settings="defaults")),
            ("LLaMA-Factory fair", dict(lf, settings="fair")),
            ("TRL fair", dict(trl, settings="fair"))]


def _tiny_base(work: Path, quick: bool, threads: int) -> dict:
    n, n_eval = (32, 16) if quick else (320, 48)
    return {"model": str(data.tiny_bench_model()), "stage": "sft", "format": "alpaca",
            "train_file": str(data.write_jsonl(data.instructions(n, 0), work / "train.jsonl")),
            "eval_file": str(data.write_jsonl(data.instructions(n_eval, 1), work / "eval.jsonl")),
            "max_length": 512, "batch_size": 8, "lr": 1e-3, "seed": 0, "threads": threads,
            "lora": LORA, "warmup_steps": 1 if quick else 2}


def sft_tiny(work: Path, quick: bool, threads: int):
    return sft_tools(_tiny_base(work, quick, threads), "chatml")


def sft_tiny_packed(work: Path, quick: bool, threads: int):
    return sft_tools(_tiny_base(work, quick, threads), "chatml", packing=True)


def sft_bbc(work: Path, quick: bool, threads: int):
    train, evals = data.bbc(16 if quick else 40, 8 if quick else 16)
    base = {"model": SMOLLM2, "stage": "sft", "format": "alpaca",
            "train_file": str(data.write_jsonl(train, work / "train.jsonl")),
            "eval_file": str(data.write_jsonl(evals, work / "eval.jsonl")),
            "max_length": 256, "batch_size": 8, "lr": 1e-3, "seed": 0, "threads": threads,
            "lora": LORA, "warmup_steps": 1}
    return sft_tools(base, "smollm2")


def pretrain(work: Path, quick: bool, threads: int):
    docs = data.documents(16 if quick else 48, 0)
    evals = data.documents(8 if quick else 16, 1)
    base = {"model": str(data.tiny_bench_model()), "stage": "pt", "format": "text",
            "train_file": str(data.write_jsonl(docs, work / "train.jsonl")),
            "eval_file": str(data.write_jsonl(evals, work / "eval.jsonl")),
            "max_length": 128, "batch_size": 8, "lr": 1e-3, "seed": 0, "threads": threads,
            "warmup_steps": 1 if quick else 2}
    return [("trl", dict(base, job="trl_sft")), ("hf-trainer", dict(base, job="hf_trainer")),
            ("lmforge", dict(base, job="lmforge_lm", lmforge_data={"packing": True}))]


def dpo(work: Path, quick: bool, threads: int):
    base = {"model": str(data.tiny_bench_model()), "max_length": 256, "batch_size": 8,
            "lr": 1e-3, "beta": 0.1, "seed": 0, "threads": threads, "lora": LORA,
            "train_file": str(data.write_jsonl(data.preferences(24 if quick else 64, 0),
                                               work / "pairs.jsonl")),
            "warmup_steps": 1}
    return [("trl", dict(base, job="trl_dpo")), ("lmforge", dict(base, job="lmforge_dpo"))]


def generation(work: Path, quick: bool, threads: int):
    if quick:
        from lmforge.utils.builtin import resolve

        model, n, prompts = resolve("builtin:tiny-llama"), 8, data.instructions(8, 2)
    else:
        model, n = SMOLLM2, 64
        prompts = data.headline_prompts(n)
    base = {"job": "generate", "model": model, "n": n, "max_new_tokens": 16 if quick else 64,
            "threads": threads,
            "prompts_file": str(data.write_jsonl(prompts, work / "prompts.jsonl"))}
    return [("lmforge batched", dict(base, batch_size=n)),
            ("one-by-one", dict(base, batch_size=1))]


def preprocessing(work: Path, quick: bool, threads: int):
    from lmforge.utils.builtin import resolve

    procs = max(2, threads)
    base = {"job": "preprocess", "model": resolve("builtin:tiny-llama"), "max_length": 512,
            "threads": 1, "repeats": 1 if quick else 3, "train_file": str(data.write_jsonl(
                data.conversations(2000 if quick else 20000, 0), work / "conversations.jsonl"))}
    return [("lmforge", dict(base, tool="lmforge")),
            ("trl", dict(base, tool="trl")),
            (f"lmforge x{procs}", dict(base, tool="lmforge", num_proc=procs)),
            (f"trl x{procs}", dict(base, tool="trl", num_proc=procs))]


def mfu(work: Path, quick: bool, threads: int):
    return [("machine", {"job": "matmul", "threads": threads, "size": 512 if quick else 1024})]


SCENARIOS: dict[str, Scenario] = {s.key: s for s in [
    Scenario("a", "sft-tiny", "SFT, LoRA r8, tiny Llama (3.5M), variable-length instructions",
             sft_tiny, repeats=3),
    Scenario("ap", "sft-tiny-packed", "SFT, LoRA r8, tiny Llama (3.5M), variable-length "
             "instructions, packed (lmforge packing, LLaMA-Factory neat_packing, TRL packing)",
             sft_tiny_packed, repeats=3),
    Scenario("b", "sft-bbc", "SFT, LoRA r8, SmolLM2-135M-Instruct, BBC News (label trained)",
             sft_bbc, repeats=3),
    Scenario("c", "pretrain", "Pretraining (full), tiny Llama, raw text, packing", pretrain),
    Scenario("d", "dpo", "DPO, LoRA r8, tiny Llama, synthetic pairs", dpo),
    Scenario("e", "generation", "Generation: 64 chat prompts, up to 64 new tokens, batched vs "
             "one-by-one (ChatEngine)",
             generation, "generate"),
    Scenario("f", "preprocessing", "Preprocessing: load, render, tokenize, mask, pack",
             preprocessing, "preprocess"),
    Scenario("g", "mfu", "Model FLOP utilisation against this machine's matmul peak", mfu,
             "mfu"),
]}


def select(names: list[str]) -> list[Scenario]:
    """Scenarios by key (a, ap, b-g) or name; all when none are given."""
    if not names:
        return list(SCENARIOS.values())
    by_name = {s.name: s for s in SCENARIOS.values()}
    out = []
    for n in names:
        s = SCENARIOS.get(n) or by_name.get(n)
        if s is None:
            known = ", ".join(f"{s.key} ({s.name})" for s in SCENARIOS.values())
            raise SystemExit(f"unknown scenario '{n}'; choose from {known}")
        out.append(s)
    return out
