"""bf16 on a CPU that multiplies it natively (AMX / AVX512-BF16; skipped elsewhere, with the
reason): ``train.precision: bf16`` trains through the real SFT stage under autocast with float32
trained weights (the frozen linear weights stored in bfloat16, as autocast casts them), its losses stay close to the fp32 run's (bf16 rounding, not another computation), and an
inference engine with ``precision="bf16"`` generates and scores close to the fp32 engine."""

from __future__ import annotations

import pytest

from lmforge.training.device import cpu_native_bf16
from tests.integration.test_adapter_training import sft_config

pytestmark = pytest.mark.skipif(not cpu_native_bf16(),
                                reason="this CPU has no native bf16 (avx512_bf16 / amx_bf16)")

LORA = {"type": "lora", "r": 4, "target_modules": "all-linear"}


def _losses(tmp_path, name, precision):
    from transformers import TrainerCallback

    from lmforge import stages

    class Record(TrainerCallback):
        def __init__(self):
            self.losses, self.dtypes, self.autocast = [], set(), set()

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.losses.append(logs["loss"])

        def on_train_begin(self, args, state, control, model=None, **kw):
            import torch

            self.dtypes = {p.dtype for p in model.parameters() if p.requires_grad}
            self.frozen = {p.dtype for n, p in model.named_parameters()
                           if not p.requires_grad and "proj" in n}

            def hook(module, args, output):
                self.autocast.add(output.dtype)
            model.get_output_embeddings().register_forward_hook(hook)

    rec = Record()
    cfg = sft_config(tmp_path, name, LORA, steps=6, lr=5e-3, train={"precision": precision})
    stages.run(cfg, callbacks=[rec])
    return rec


def test_bf16_training_is_autocast_over_float32_weights(tmp_path):
    import torch

    fp32 = _losses(tmp_path, "fp32", "fp32")
    bf16 = _losses(tmp_path, "bf16", "bf16")
    assert bf16.dtypes == {torch.float32} == fp32.dtypes  # the trained weights stay float32
    # the frozen linear weights are stored as autocast would cast them (training/frozen_cast.py)
    assert bf16.frozen == {torch.bfloat16} and fp32.frozen == {torch.float32}
    assert bf16.autocast == {torch.bfloat16} and fp32.autocast == {torch.float32}
    assert len(bf16.losses) == len(fp32.losses) == 6
    for a, b in zip(fp32.losses, bf16.losses):
        assert abs(a - b) <= 0.03 * abs(a) + 1e-3, (fp32.losses, bf16.losses)
    assert bf16.losses[-1] < bf16.losses[0]


def test_bf16_engine_generates_and_scores_like_fp32(tiny_model_dir):
    from lmforge.infer.engine import ChatEngine

    chats = [[{"role": "user", "content": f"say {w}"}] for w in ("one", "two", "three")]
    fp32 = ChatEngine.load(str(tiny_model_dir), precision="fp32")
    bf16 = ChatEngine.load(str(tiny_model_dir), precision="bf16")
    assert bf16.precision == "bf16" and fp32.precision == "fp32"
    outs = bf16.generate(chats, max_new_tokens=4, do_sample=False)
    assert all(o.choices[0].token_ids for o in outs)
    pairs = [(fp32.encode("the prompt"), fp32.encode(" an answer"))]
    want, got = fp32.loglikelihood(pairs)[0], bf16.loglikelihood(pairs)[0]
    assert len(want) == len(got)
    assert max(abs(a - b) for a, b in zip(want, got)) < 0.1  # bf16 rounding of the logits


def test_ppo_loop_runs_under_bf16_autocast(tmp_path):
    """lmforge's own PPO loop (no Trainer, so no accelerate autocast) autocasts itself: the
    policy's logits are bf16 during the run, its weights float32, the rewards finite."""
    import math

    import torch

    from lmforge import stages
    from tests.integration.rl_toys import config, example, prompt_data, write_rewards

    seen = set()
    rewards = write_rewards(tmp_path)
    cfg = config(example("ppo"), tmp_path, data=prompt_data(tmp_path),
                 ppo={"reward_functions": [f"{rewards}:digit_share"], "diagnostic_samples": 0},
                 train={"max_steps": 2, "batch_size": 4, "save_steps": 2, "precision": "bf16"})

    from transformers import TrainerCallback

    class Watch(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            model.get_output_embeddings().register_forward_hook(
                lambda m, a, out: seen.add((out.dtype, m.weight.dtype)))

    result = stages.run(cfg, callbacks=[Watch()])
    assert (torch.bfloat16, torch.float32) in seen
    rewards_logged = [h["reward_mean"] for h in result.log_history if "reward_mean" in h]
    assert rewards_logged and all(math.isfinite(r) for r in rewards_logged)
