"""DeepSpeed ZeRO-2 and ZeRO-3 on one GPU, with and without CPU offload (marker ``gpu``; skipped
without CUDA or deepspeed).

Each run is ``train.deepspeed`` as users set it: the shipped presets ``zero2``, ``zero3``,
``zero3_offload``, and a user JSON file (ZeRO-2 with the optimizer offloaded to the CPU), on the
sft stage of the tiny model in bf16, without a launcher (lmforge gives the single process its
rendezvous). Each runs in its own process (DeepSpeed keeps process-wide state). Checked:

- the engine really was DeepSpeed at the configured ZeRO stage and offload devices, and ZeRO-3
  sharded the parameters;
- the first loss equals the plain (non-DeepSpeed) GPU run's (same weights, same batch), every
  loss is finite, and the loss falls;
- the saved model has every tensor at its full shape (ZeRO-3 gathers on save) and loads in
  plain transformers with finite logits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.gpu.gpu_runs import (GPU, assert_falls, assert_finite, losses, needs,
                                needs_native_bf16, run_stage, stage_tree)

pytestmark = [*GPU, needs("deepspeed", "deepspeed", "deepspeed"), needs_native_bf16]

STEPS = 10
# a user's own config: ZeRO-2 with the optimizer state on the CPU, transformers' torch AdamW kept
# (DeepSpeedCPUAdam would need a compiled op), "auto" values filled by lmforge/transformers
ZERO2_OFFLOAD = {
    "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu", "pin_memory": True},
                          "overlap_comm": True, "contiguous_gradients": True,
                          "reduce_bucket_size": "auto"},
    "zero_force_ds_cpu_optimizer": False,
    "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"},
    "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
    "train_batch_size": "auto", "gradient_clipping": "auto",
}
# name -> (ZeRO stage, optimizer offload device, parameter offload device)
ENGINES = {"zero2": (2, None, None), "zero2_offload_json": (2, "cpu", None),
           "zero3": (3, None, None), "zero3_offload": (3, "cpu", "cpu")}

DRIVER = """
import json, sys
from transformers import TrainerCallback
from lmforge.config import validate
from lmforge.stages import run

class Probe(TrainerCallback):
    info = {}
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        from accelerate.state import AcceleratorState
        st = AcceleratorState()
        plugin = st.deepspeed_plugin
        zero = plugin.deepspeed_config.get("zero_optimization", {}) if plugin else {}
        self.info = {"engine": str(st.distributed_type.value),
                     "zero_stage": plugin.zero_stage if plugin else None,
                     "offload_optimizer": (zero.get("offload_optimizer") or {}).get("device"),
                     "offload_param": (zero.get("offload_param") or {}).get("device"),
                     "device": str(args.device), "bf16": bool(args.bf16),
                     "sharded": any(getattr(p, "ds_numel", 0) and p.numel() == 0
                                    for p in model.parameters())}

spec = json.loads(open(sys.argv[1]).read())
probe = Probe()
result = run(validate(spec["config"]), callbacks=[probe])
out = {"losses": [h["loss"] for h in result.log_history if "loss" in h and "step" in h],
       "probe": probe.info, "world_size": result.metrics["world_size"],
       "global_step": result.metrics["global_step"]}
open(spec["results"], "w").write(json.dumps(out))
"""


def _tree(out, deepspeed=None) -> dict:
    train = {"deepspeed": deepspeed} if deepspeed else {}
    return stage_tree("sft", out, "bf16", steps=STEPS, model={"dtype": "auto"}, train=train)


def _env() -> dict:
    launcher = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                "LMFORGE_LAUNCHED", "ACCELERATE_USE_DEEPSPEED")
    env = {k: v for k, v in os.environ.items() if k not in launcher}
    return dict(env, PYTHONPATH=str(REPO))


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The same run on the GPU without DeepSpeed (in this process)."""
    result, _ = run_stage(_tree(tmp_path_factory.mktemp("plain") / "run"))
    return losses(result.log_history)


def _run_deepspeed(name: str, tmp_path) -> dict:
    spec = name
    if name == "zero2_offload_json":
        spec = str(tmp_path / "ds_zero2_offload.json")
        (tmp_path / "ds_zero2_offload.json").write_text(json.dumps(ZERO2_OFFLOAD, indent=1))
    job = {"config": _tree(tmp_path / "run", spec), "results": str(tmp_path / "results.json")}
    (tmp_path / "spec.json").write_text(json.dumps(job))
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / "spec.json")], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "mpi4py" not in proc.stderr
    return json.loads((tmp_path / "results.json").read_text())


@pytest.mark.parametrize("name", list(ENGINES))
def test_deepspeed_trains_on_one_gpu(name, plain, tmp_path, tiny_model_dir):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    stage, offload_optimizer, offload_param = ENGINES[name]
    got = _run_deepspeed(name, tmp_path)
    probe = got["probe"]
    assert probe["engine"] == "DEEPSPEED" and probe["zero_stage"] == stage, probe
    assert (probe["offload_optimizer"], probe["offload_param"]) == (offload_optimizer,
                                                                     offload_param), probe
    assert probe["device"].startswith("cuda") and probe["bf16"], probe
    assert probe["sharded"] == (stage == 3), probe
    assert got["world_size"] == 1 and got["global_step"] == STEPS
    assert_finite(got["losses"], f"{name} loss")
    assert_falls(got["losses"], f"{name} loss")
    assert len(got["losses"]) == len(plain)
    assert got["losses"][0] == pytest.approx(plain[0], rel=1e-2), (got["losses"], plain)

    saved = load_file(str(tmp_path / "run" / "model.safetensors"))
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    assert {k: tuple(v.shape) for k, v in saved.items()} == {k: tuple(v.shape)
                                                             for k, v in base.items()}
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run").to("cuda").eval()
    with torch.no_grad():
        logits = model(input_ids=torch.arange(5, 25, device="cuda")[None]).logits
    assert torch.isfinite(logits.float()).all()
    print(f"\n{name}: loss {got['losses'][0]:.4f} -> {got['losses'][-1]:.4f} "
          f"(plain {plain[0]:.4f} -> {plain[-1]:.4f})")
