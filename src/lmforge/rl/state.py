"""Everything a PPO run needs to stop and continue exactly: the prompt order, checkpoints with
weights + optimizer + scheduler + RNG + history, and loading them back.

A checkpoint is ``checkpoint-<step>/`` holding the policy as ``save_pretrained`` writes it (a full
model or an adapter: export and inference accept it), ``critic/`` (value head, and the separate
critic's backbone), ``optimizer.pt``, ``scheduler.pt``, the RNG state (``rng_state.pth``, or
``rng_state_<rank>.pth`` per process), ``ppo_state.json`` and the manifest. It is staged under
another name and renamed when complete (lmforge.training.checkpoints), so a crash never leaves a
half checkpoint.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import torch

STATE = "ppo_state.json"

log = logging.getLogger(__name__)


class PromptSampler:
    """Batches of prompt indices: a seeded shuffle per epoch, resumable from (epoch, position)."""

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int = 0, position: int = 0):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.position = epoch, position
        self._order = self._shuffle()

    def _shuffle(self) -> list[int]:
        order = list(range(self.n))
        random.Random(self.seed * 100003 + self.epoch).shuffle(order)
        return order

    def next(self) -> list[int]:
        out: list[int] = []
        while len(out) < self.batch_size:
            if self.position >= self.n:
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._shuffle()
            take = self._order[self.position:self.position + self.batch_size - len(out)]
            out += take
            self.position += len(take)
        return out

    def state(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}


def is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def save_module(model, out: Path) -> None:
    model.save_pretrained(str(out), safe_serialization=True)


def load_module_weights(model, folder: Path) -> None:
    """Load weights written by ``save_module`` into an already built model of the same shape."""
    from safetensors.torch import load_file

    if is_peft(model):
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights

        set_peft_model_state_dict(model, load_peft_weights(str(folder)))
        return
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        from transformers.modeling_utils import load_sharded_checkpoint

        load_sharded_checkpoint(model, str(folder), strict=False)
        return
    missing, unexpected = model.load_state_dict(load_file(str(folder / "model.safetensors")),
                                                strict=False)
    tied = {k for k in missing if "lm_head" in k or "embed" in k}
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"checkpoint {folder} does not match the model (missing "
                           f"{sorted(set(missing) - tied)[:3]}, unexpected {unexpected[:3]})")


def _rng_file(rank: int, world: int) -> str:
    return f"rng_state_{rank}.pth" if world > 1 else "rng_state.pth"  # as the Trainer names them


def _rng_state(generator) -> dict:
    rng = {"torch": torch.get_rng_state(), "python": random.getstate(),
           "minibatch": generator.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def save_checkpoint(out_dir: Path, step: int, policy, value_head, critic_backbone, optimizer,
                    scheduler, generator, state: dict, limit: int | None = None,
                    tokenizer=None) -> Path:
    """Written the way the Trainer stages write theirs (lmforge.training.checkpoints): staged in
    ``.partial-checkpoint-<step>``, the manifest last, then published by a rename and the oldest
    complete ones beyond ``limit`` rotated away. Every process calls it: each writes its RNG
    state, the main process everything else; barriers keep them in step."""
    from safetensors.torch import save_file

    from lmforge.rl import parallel
    from lmforge.training import checkpoints as C

    main, world = parallel.is_main(), parallel.world_size()
    final = out_dir / f"checkpoint-{step}"

    def write(staging: Path) -> None:
        torch.save(_rng_state(generator), staging / _rng_file(parallel.rank(), world))
        if not main:
            return
        save_module(policy, staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(staging))
        (staging / "critic").mkdir()
        save_file({k: v.contiguous() for k, v in value_head.state_dict().items()},
                  str(staging / "critic" / "value_head.safetensors"))
        if critic_backbone is not None:
            save_module(critic_backbone, staging / "critic")
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(scheduler.state_dict(), staging / "scheduler.pt")
        (staging / STATE).write_text(json.dumps(dict(state, global_step=step), indent=1))

    def finish(staging: Path) -> None:
        C.seal(staging, final, step)  # train.resume: auto takes only verified checkpoints
        C.rotate(out_dir, limit)

    C.staged_save(out_dir, final.name, main, parallel.barrier, write, finish)
    return final


def _rng_path(folder: Path) -> Path:
    """This process's RNG state; a run resumed on another number of processes cannot sample
    exactly as before: it takes the nearest state there is and says so."""
    from lmforge.rl import parallel

    rank, world = parallel.rank(), parallel.world_size()
    path = folder / _rng_file(rank, world)
    if path.is_file():
        return path
    found = sorted(folder.glob("rng_state*.pth"))
    log.warning("%s has no %s (saved by another number of processes): the sampling after the "
                "resume will differ from an uninterrupted run", folder, path.name)
    return next((p for p in found if p.name in ("rng_state.pth", f"rng_state_{rank}.pth")),
                found[0])


def load_checkpoint(folder: Path, policy, value_head, critic_backbone, optimizer, scheduler,
                    generator) -> dict:
    """Restore weights, optimizer, scheduler and RNG; returns the saved loop state."""
    from safetensors.torch import load_file

    state_file = folder / STATE
    if not state_file.is_file():
        from lmforge.errors import ConfigError

        raise ConfigError(f"train.resume: {folder} is not a PPO checkpoint (no {STATE})")
    load_module_weights(policy, folder)
    value_head.load_state_dict(load_file(str(folder / "critic" / "value_head.safetensors")))
    if critic_backbone is not None:
        load_module_weights(critic_backbone, folder / "critic")
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    rng = torch.load(_rng_path(folder), weights_only=True)
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["minibatch"])
    random.setstate(rng["python"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads(state_file.read_text())
