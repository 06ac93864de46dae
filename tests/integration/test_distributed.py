"""Scale-out on the CPU: 2 gloo processes (torchrun) against 1 process with twice the batch.

One torchrun session runs this file as a script (``__main__`` below): DDP interrupted at step 2
and resumed, DeepSpeed ZeRO-2, ZeRO-3 (full and LoRA), ZeRO-3 with CPU offload, ZeRO-3
interrupted and resumed, all with per-device batch 2. The tests compare them with in-process
single-process runs at batch 4:

- the loss of every step agrees within 1e-4 (the same examples make up each global batch, the
  loss is normalised by the trained tokens of the whole batch across processes);
- ZeRO-3 really sharded the parameters during training, yet every saved tensor (full model and
  LoRA adapter) has its full shape and the single-process values (gathered on save);
- a 2-process run stopped after step 2 and resumed (train.resume: auto) ends like the
  uninterrupted one.

``lmforge train --nproc 2`` (the launcher re-executing itself under torchrun, DDP) is tested too
(slow tier; tests/unit/test_distributed_units.py checks the command it runs).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

WORDS = "red green blue yellow purple one two three four five six seven eight nine".split()
STEPS = 4


def train_section(out, **extra) -> dict:
    base = {"output_dir": str(out), "learning_rate": 3e-3, "lr_scheduler": "cosine",
            "warmup_ratio": 0.1, "logging_steps": 1, "save_steps": 1000, "report_to": ["none"],
            "seed": 7, "num_threads": 1, "max_steps": STEPS, "batch_size": 2}
    base.update(extra)
    return base


def tree(model_dir, data_file, out, adapter="full", **train) -> dict:
    adapter_block = {"type": adapter} if adapter == "full" else {"type": adapter, "dropout": 0.0}
    return {"stage": "sft", "model": {"path": str(model_dir)}, "adapter": adapter_block,
            "data": {"train": str(data_file), "format": "alpaca", "max_length": 64},
            "train": train_section(out, **train)}


# ---------------------------------------------------------------- the torchrun side (a script)

def _driver(spec_file: str) -> None:
    """Run every job of the spec in this (torchrun) process; rank 0 writes the results."""
    from transformers import TrainerCallback

    from lmforge.config import validate
    from lmforge.stages import run
    from lmforge.training.callbacks import StopAtStep

    class Probe(TrainerCallback):
        """What the engine really did: its type, ZeRO stage, whether parameters were sharded."""

        info: dict = {}

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            from accelerate.state import AcceleratorState

            st = AcceleratorState()
            plugin = st.deepspeed_plugin
            self.info = {"type": str(st.distributed_type.value), "world_size": args.world_size,
                         "zero_stage": plugin.zero_stage if plugin else None,
                         "sharded": any(getattr(p, "ds_numel", 0) and p.numel() == 0
                                        for p in model.parameters())}

    from lmforge.data import pipeline

    hits = []  # per job: did this rank's data come from the tokenization cache?
    build = pipeline.build

    def recording_build(*args, **kwargs):
        data = build(*args, **kwargs)
        hits.append(bool(data.stats.get("cache_hit")))
        return data

    pipeline.build = recording_build
    spec = json.loads(Path(spec_file).read_text())
    rank = int(os.environ.get("RANK", "0"))
    results = {}
    for job in spec["jobs"]:
        probe = Probe()
        stop = [StopAtStep(job["stop_at"])] if job.get("stop_at") else []
        result = run(validate(job["config"]), callbacks=[probe, *stop])
        results[job["name"]] = {"losses": losses(result.log_history), "engine": probe.info,
                                "metrics": result.metrics}
    Path(f"{spec['results']}.rank{rank}").write_text(json.dumps(hits))
    if rank == 0:
        Path(spec["results"]).write_text(json.dumps(results, default=str))


# ---------------------------------------------------------------- the pytest side

def losses(history) -> dict[int, float]:
    return {int(h["step"]): h["loss"] for h in history if "loss" in h}


def weights(path: Path) -> dict:
    from safetensors.torch import load_file

    name = "model.safetensors" if (path / "model.safetensors").is_file() else \
        "adapter_model.safetensors"
    return load_file(str(path / name))


def assert_same_weights(got: dict, want: dict, tol: float = 1e-5) -> None:
    assert sorted(got) == sorted(want)
    for key, tensor in want.items():
        assert got[key].shape == tensor.shape and got[key].numel() > 0, key
        assert float((got[key] - tensor).abs().max()) <= tol, key


def assert_same_losses(got: dict, want: dict, steps=range(1, STEPS + 1)) -> None:
    got = {int(k): v for k, v in got.items()}
    for step in steps:
        assert got[step] == pytest.approx(want[step], abs=1e-4), f"step {step}"


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    from tests.conftest import write_jsonl

    rng = random.Random(3)
    rows = [{"instruction": f"Say item {i}.", "input": "",
             "output": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8)))}
            for i in range(32)]
    return write_jsonl(tmp_path_factory.mktemp("dist") / "train.jsonl", rows)


@pytest.fixture(scope="module")
def single(tiny_model_dir, data_file, tmp_path_factory):
    """1 process, batch 4: the reference runs (full and LoRA)."""
    from lmforge.config import validate
    from lmforge.stages import run

    root = tmp_path_factory.mktemp("single")
    out = {}
    for adapter in ("full", "lora"):
        res = run(validate(tree(tiny_model_dir, data_file, root / adapter, adapter,
                                batch_size=4)))
        out[adapter] = {"losses": losses(res.log_history), "dir": root / adapter,
                        "metrics": res.metrics}
    return out


def torchrun(args: list[str], timeout: int = 420) -> subprocess.CompletedProcess:
    from tests.conftest import REPO

    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def two(tiny_model_dir, data_file, tmp_path_factory):
    """The 2-process jobs, all in one torchrun session."""
    root = tmp_path_factory.mktemp("two")

    def job(name, adapter="full", stop_at=None, **train):
        return {"name": name, "stop_at": stop_at,
                "config": tree(tiny_model_dir, data_file, root / name, adapter, **train)}

    first = job("ddp_resume", stop_at=2, save_steps=2)
    first["config"]["data"]["cache_dir"] = str(root / "fresh-cache")  # nothing cached yet
    jobs = [first,
            job("ddp_resume", save_steps=2, resume="auto"),
            job("ddp"),
            job("zero2", deepspeed="zero2"),
            job("zero3", deepspeed="zero3"),
            job("zero3_offload", deepspeed="zero3_offload"),
            job("zero3_lora", "lora", deepspeed="zero3"),
            job("zero3_resume", stop_at=2, save_steps=2, deepspeed="zero3"),
            job("zero3_resume", save_steps=2, resume="auto", deepspeed="zero3")]
    spec = root / "spec.json"
    spec.write_text(json.dumps({"jobs": jobs, "results": str(root / "results.json")}))
    proc = torchrun([__file__, str(spec)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    results = json.loads((root / "results.json").read_text())
    out = {name: dict(r, dir=root / name) for name, r in results.items()}
    out["cache_hits"] = [json.loads((root / f"results.json.rank{r}").read_text())
                         for r in (0, 1)]
    return out


def test_rank_zero_tokenizes_first_and_the_other_rank_reads_its_cache(two):
    rank0, rank1 = two["cache_hits"]
    assert rank0[0] is False and rank1[0] is True  # fresh cache: only rank 0 tokenized


@pytest.mark.parametrize("name", ["ddp", "ddp_resume", "zero2"])
def test_train_loss_and_flos_agree_with_one_process(single, two, name):
    """metrics.json's train_loss: the mean over every step of the run (resumed ones included) of
    the global batch's loss, whatever the number of processes (issue 18, item 4)."""
    got, want = two[name]["metrics"], single["full"]["metrics"]
    assert got["world_size"] == 2 and want["world_size"] == 1
    assert got["train_loss"] == pytest.approx(want["train_loss"], abs=1e-4)
    assert want["train_loss"] == pytest.approx(
        sum(single["full"]["losses"].values()) / STEPS, abs=1e-6)
    if name == "ddp":
        assert got["total_flos"] == pytest.approx(want["total_flos"], rel=1e-6)


@pytest.mark.parametrize("name,stage", [("zero2", 2), ("zero3", 3), ("zero3_offload", 3)])
def test_deepspeed_matches_single_process(single, two, name, stage):
    run = two[name]
    assert run["engine"]["type"] == "DEEPSPEED" and run["engine"]["zero_stage"] == stage
    assert run["engine"]["world_size"] == 2 and run["metrics"]["world_size"] == 2
    assert_same_losses(run["losses"], single["full"]["losses"])
    assert_same_weights(weights(run["dir"]), weights(single["full"]["dir"]))


def test_zero3_saves_complete_weights_and_adapters(single, two):
    # parameters were partitioned while training (empty local tensors) ...
    assert two["zero3"]["engine"]["sharded"] and two["zero3_lora"]["engine"]["sharded"]
    # ... and the saves hold every tensor whole, with the values of the 1-process run
    full = weights(two["zero3"]["dir"])
    from safetensors import safe_open

    with safe_open(str(Path(single["full"]["dir"]) / "model.safetensors"), "pt") as f:
        assert {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()} == \
            {k: tuple(v.shape) for k, v in full.items()}
    lora = two["zero3_lora"]
    assert_same_losses(lora["losses"], single["lora"]["losses"])
    assert_same_weights(weights(lora["dir"]), weights(single["lora"]["dir"]))
    assert any("lora_" in k for k in weights(lora["dir"]))


@pytest.mark.parametrize("name", ["ddp_resume", "zero3_resume"])
def test_two_process_run_resumes(single, two, name):
    run = two[name]
    assert run["metrics"]["global_step"] == STEPS
    assert (run["dir"] / "checkpoint-2").is_dir()
    assert_same_losses(run["losses"], single["full"]["losses"], steps=range(3, STEPS + 1))
    assert_same_weights(weights(run["dir"]), weights(single["full"]["dir"]))


@pytest.mark.slow  # ~40 s more: a second torchrun start-up (the argv is unit-tested by default)
def test_train_nproc_relaunches_under_torchrun(single, tiny_model_dir, data_file, tmp_path):
    """`lmforge train --nproc 2`: two DDP processes, rank-0-only output and files."""
    import yaml

    from tests.conftest import run_cli

    out = tmp_path / "ddp"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tree(tiny_model_dir, data_file, out)))
    proc = run_cli("train", str(config), "--nproc", "2", timeout=420,
                   env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("done:") == 1  # rank 0 only
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["global_step"] == STEPS
    state = json.loads((out / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    assert_same_losses(losses(state["log_history"]), single["full"]["losses"])
    assert_same_weights(weights(out), weights(single["full"]["dir"]))


if __name__ == "__main__":  # run by torchrun in the `two` fixture
    _driver(sys.argv[1])
