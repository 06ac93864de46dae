"""Launcher command lines, rank helpers, DeepSpeed/FSDP settings (no processes started)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from lmforge.commands._runargs import Overrides
from lmforge.errors import ConfigError


def _cfg(**train):
    from lmforge.config import validate

    base = {"output_dir": "runs/x", "batch_size": 3, "grad_accum": 2, "max_grad_norm": 0.5,
            "learning_rate": 2e-4, "weight_decay": 0.01}
    base.update(train)
    return validate({"stage": "sft", "model": {"path": "builtin:tiny-llama"},
                     "data": {"train": "x.jsonl"}, "train": base})


def _args(**kw):
    base = dict(config="run.yaml", data_config=None, model_config=None, debug=False, nproc=2,
                nnodes=1, node_rank=0, master_addr=None, master_port=None,
                overrides=Overrides(data=["a.b=1"], model=[], merged=["train.max_steps=3"]))
    base.update(kw)
    return argparse.Namespace(**base)


def test_single_node_launch_uses_standalone_torchrun_and_keeps_every_argument():
    from lmforge.distributed.launch import torchrun_argv

    argv = torchrun_argv(_args(debug=True))
    assert argv[1:5] == ["-m", "torch.distributed.run", "--nproc_per_node", "2"]
    assert "--standalone" in argv and "--master_addr" not in argv
    tail = argv[argv.index("lmforge") + 1:]
    assert tail == ["train", "--debug", "run.yaml", "--D.a.b=1", "train.max_steps=3"]


def test_relaunch_gives_torchrun_a_log_dir_and_removes_it(monkeypatch, tmp_path):
    """Without --log-dir torchrun leaves a torchelastic_* directory in $TMPDIR on every run."""
    import subprocess
    import tempfile

    from lmforge.distributed import launch

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen = []

    def fake_run(argv, env=None, **kwargs):
        logs = argv[argv.index("--log-dir") + 1]
        assert argv.index("--log-dir") < argv.index("lmforge")
        seen.append((logs, Path(logs).is_dir()))
        (Path(logs) / "attempt_0").mkdir()  # what torchrun writes there
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(launch.subprocess, "run", fake_run)
    assert launch.relaunch(_args()) == 0
    (logs, existed), = seen
    assert existed and Path(logs).parent == tmp_path
    assert list(tmp_path.iterdir()) == []


def test_multi_node_launch_names_the_rendezvous():
    from lmforge.distributed.launch import check, torchrun_argv

    args = _args(nnodes=2, node_rank=1, master_addr="10.0.0.5", master_port=1234)
    check(args)
    argv = torchrun_argv(args)
    assert "--standalone" not in argv
    for flag, value in [("--nnodes", "2"), ("--node_rank", "1"), ("--master_addr", "10.0.0.5"),
                        ("--master_port", "1234")]:
        assert argv[argv.index(flag) + 1] == value


@pytest.mark.parametrize("kw,message", [
    (dict(nnodes=2), "--master-addr"),
    (dict(nnodes=2, node_rank=2, master_addr="h"), "--node-rank"),
    (dict(nproc=0), "--nproc"),
])
def test_bad_launch_options_are_config_errors(kw, message):
    from lmforge.distributed.launch import check

    with pytest.raises(ConfigError, match=message):
        check(_args(**kw))


def test_no_relaunch_inside_a_launcher(monkeypatch):
    from lmforge.distributed.launch import wants_launch

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LMFORGE_LAUNCHED", raising=False)
    assert wants_launch(_args()) and not wants_launch(_args(nproc=1))
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not wants_launch(_args())


def test_rank_helpers_read_the_launcher_environment(monkeypatch):
    from lmforge.distributed import ranks

    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert (ranks.rank(), ranks.local_rank(), ranks.world_size()) == (3, 1, 4)
    assert ranks.launched() and not ranks.is_main()
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name)
    assert not ranks.launched() and ranks.is_main()
    with ranks.main_first() as first:  # no process group: just runs the body
        assert first


@pytest.mark.parametrize("preset,stage", [("zero2", 2), ("zero3", 3), ("zero3_offload", 3)])
def test_presets_get_auto_values_from_the_config(preset, stage):
    from lmforge.distributed.engines import fill_auto, load_deepspeed

    ds = fill_auto(load_deepspeed(preset), _cfg(), world_size=4)
    assert ds["zero_optimization"]["stage"] == stage
    assert ds["train_micro_batch_size_per_gpu"] == 3 and ds["gradient_accumulation_steps"] == 2
    assert ds["train_batch_size"] == 4 * 3 * 2 and ds["gradient_clipping"] == 0.5
    assert ds["bf16"]["enabled"] is False and ds["fp16"]["enabled"] is False  # CPU: fp32
    # model-dependent values are left to transformers (filled from hidden_size)
    assert ds["zero_optimization"]["reduce_bucket_size"] == "auto"
    if stage == 3:
        assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    if preset == "zero3_offload":
        assert ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
        assert ds["zero_force_ds_cpu_optimizer"] is False  # torch AdamW, no compiled op


def test_user_json_keeps_explicit_values_and_fills_optimizer_autos(tmp_path):
    from lmforge.distributed.engines import fill_auto, load_deepspeed

    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 1},
                                "train_micro_batch_size_per_gpu": 8,
                                "optimizer": {"type": "AdamW", "params": {
                                    "lr": "auto", "weight_decay": "auto", "betas": "auto"}}}))
    ds = fill_auto(load_deepspeed(str(path)), _cfg(**{"extra": {"adam_beta2": 0.95}}))
    assert ds["train_micro_batch_size_per_gpu"] == 8  # explicit: transformers checks it
    assert ds["optimizer"]["params"] == {"lr": 2e-4, "weight_decay": 0.01, "betas": [0.9, 0.95]}
    assert "train_batch_size" not in ds


def test_bad_deepspeed_values_are_config_errors(tmp_path):
    from lmforge.distributed.engines import load_deepspeed

    with pytest.raises(ConfigError, match="zero9"):
        _cfg(deepspeed="zero9")
    with pytest.raises(ConfigError, match="neither a preset"):
        load_deepspeed(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{\n  'stage': 2}")
    with pytest.raises(ConfigError, match="bad.json:2"):
        load_deepspeed(str(bad))
    with pytest.raises(ConfigError, match="cannot both be set"):
        _cfg(deepspeed="zero2", fsdp={"version": 2})


def test_fsdp_on_the_cpu_is_refused_not_silently_dropped():
    from lmforge.training.args import build_arguments

    with pytest.raises(ConfigError, match="FSDP needs CUDA"):
        build_arguments(_cfg(fsdp=True, use_cpu=True), has_eval=False)


def test_fsdp_config_defaults_to_full_state_dict(monkeypatch):
    from lmforge.distributed import engines
    from lmforge.training import device

    monkeypatch.setattr(device, "on_gpu", lambda cfg: True)
    out = engines.engine_kwargs(_cfg(fsdp={"fsdp_cpu_offload": True}))
    assert out["fsdp"] is True
    assert out["fsdp_config"] == {"cpu_offload": True, "version": 2,
                                  "state_dict_type": "FULL_STATE_DICT"}


def test_training_arguments_carry_the_resolved_deepspeed_config():
    from lmforge.training.args import build_arguments

    args = build_arguments(_cfg(deepspeed="zero3", run_name="exp-1"), has_eval=False)
    assert args.deepspeed["zero_optimization"]["stage"] == 3
    assert args.deepspeed["train_micro_batch_size_per_gpu"] == 3
    assert args.hf_deepspeed_config.is_zero3() and args.run_name == "exp-1"
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()  # do not leak ZeRO-3 into other tests' model loading


def test_train_nproc_validates_then_runs_torchrun(tmp_path, monkeypatch):
    import subprocess

    from lmforge.cli import main
    from lmforge.distributed import launch

    calls = []

    def fake_run(argv, env=None, **kwargs):
        calls.append((argv, env))
        return subprocess.CompletedProcess(argv, 3)

    monkeypatch.setattr(launch.subprocess, "run", fake_run)
    for name in ("WORLD_SIZE", "LMFORGE_LAUNCHED"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "run.yaml"
    config.write_text("stage: sft\nmodel: {path: 'builtin:tiny-llama'}\ndata: {train: x.jsonl}\n")
    assert main(["train", str(config), "--nproc", "2", "train.max_steps=3"]) == 3
    (argv, env), = calls
    assert argv[argv.index("lmforge") + 1:] == ["train", str(config), "train.max_steps=3"]
    assert env["LMFORGE_LAUNCHED"] == "1"
    calls.clear()
    assert main(["train", str(config), "--nproc", "2", "train.max_stepz=3"]) == 2
    assert not calls  # a bad config fails before any process starts


def test_user_zero3_config_gathers_weights_on_save_unless_told_not_to():
    from lmforge.distributed.engines import gather_on_save

    key = "stage3_gather_16bit_weights_on_model_save"
    assert gather_on_save({"zero_optimization": {"stage": 3}})["zero_optimization"][key] is True
    assert gather_on_save({"zero_optimization": {"stage": 3, key: False}}
                          )["zero_optimization"][key] is False
    assert key not in gather_on_save({"zero_optimization": {"stage": 2}})["zero_optimization"]
