"""What a benchmark worker measures, the same way for every trainer (lmforge, trl, transformers).

``Recorder.install()`` patches two methods of transformers' ``Trainer`` class, which every
trainer measured here inherits (trl's call them through ``super()``):

- ``get_train_dataloader`` wraps the data collator: each collated micro-batch is counted
  (computed positions = ``input_ids.numel()``; non-pad tokens from the features' own lengths,
  else the attention mask; trained tokens = ``labels[:, 1:] != -100``, or trl's completion mask);
- ``training_step`` takes those counts in order (collation and consumption happen in the same
  order; accelerate collates one batch ahead, hence a queue).

A ``StepClock`` callback stamps wall and process CPU time at the end of every optimizer step and
keeps the logged losses. Throughput is taken over the WARM steps only (after the first ones,
which pay for allocation and lazy initialisation): trained tokens of those steps divided by the
wall time between the end of the last cold step and the end of the run.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from collections import deque

IGNORE = -100


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def peak_gpu_mb() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_allocated() / 2**20


def batch_counts(batch: dict, features: list | None = None) -> dict:
    """computed / non-pad / trained token counts and the examples of one collated batch (a
    packed row holds several: each starts where its position ids restart at 0)."""
    ids = batch.get("input_ids")
    computed = int(ids.numel()) if ids is not None else 0
    pos = batch.get("position_ids")
    if pos is not None and getattr(pos, "ndim", 0) == 2:
        examples = int((pos == 0).sum())
    else:
        examples = int(ids.shape[0]) if ids is not None and getattr(ids, "ndim", 0) == 2 else 0
    if features and isinstance(features[0], dict) and "input_ids" in features[0]:
        nonpad = sum(len(f["input_ids"]) for f in features)
    elif batch.get("attention_mask") is not None:
        nonpad = int(batch["attention_mask"].sum())
    else:
        nonpad = computed
    labels = batch.get("labels")
    if labels is not None and getattr(labels, "ndim", 0) == 2:
        trained = int((labels[:, 1:] != IGNORE).sum())
    elif batch.get("completion_mask") is not None:
        trained = int(batch["completion_mask"].sum())
    else:
        trained = nonpad
    return {"computed": computed, "nonpad": min(nonpad, computed), "trained": trained,
            "examples": examples}


class _Counting:
    def __init__(self, collator, recorder: "Recorder"):
        self.collator, self.recorder = collator, recorder

    def __call__(self, features):
        batch = self.collator(features)
        self.recorder.pending.append(batch_counts(batch, features))
        return batch

    def __getattr__(self, name):  # trainers read attributes of their collator
        return getattr(self.collator, name)


class Recorder:
    """Per-process measurements of one training run."""

    def __init__(self):
        self.pending: deque = deque()
        self.micro: list[dict] = []  # counts of every micro-batch trained, in order
        self.step_ends: list[tuple[float, float, int]] = []  # (wall, cpu, micro-batches so far)
        self.losses: list[float] = []
        self.start: tuple[float, float] | None = None

    def install(self) -> None:
        from transformers import Trainer

        recorder = self
        get_loader, step = Trainer.get_train_dataloader, Trainer.training_step

        def get_train_dataloader(trainer, *args, **kwargs):
            if not isinstance(trainer.data_collator, _Counting):
                trainer.data_collator = _Counting(trainer.data_collator, recorder)
            return get_loader(trainer, *args, **kwargs)

        def training_step(trainer, *args, **kwargs):
            recorder.micro.append(recorder.pending.popleft() if recorder.pending else
                                  {"computed": 0, "nonpad": 0, "trained": 0, "examples": 0})
            return step(trainer, *args, **kwargs)

        self._originals = (get_loader, step)
        Trainer.get_train_dataloader = get_train_dataloader
        Trainer.training_step = training_step

    def uninstall(self) -> None:
        from transformers import Trainer

        Trainer.get_train_dataloader, Trainer.training_step = self._originals

    def callback(self):
        from transformers import TrainerCallback

        recorder = self

        class StepClock(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                recorder.start = (time.perf_counter(), time.process_time())

            def on_step_end(self, args, state, control, **kwargs):
                recorder.step_ends.append((time.perf_counter(), time.process_time(),
                                           len(recorder.micro)))

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    recorder.losses.append(float(logs["loss"]))

        return StepClock()

    def summary(self, warmup: int = 1) -> dict:
        return summarize(self.micro, self.step_ends, self.losses, self.start, warmup)


def summarize(micro: list[dict], step_ends: list, losses: list[float], start, warmup: int = 1
              ) -> dict:
    """Throughput and step-time statistics over the warm steps, token totals over all steps."""
    total = {k: sum(m.get(k, 0) for m in micro)
             for k in ("computed", "nonpad", "trained", "examples")}
    out = {"steps": len(step_ends), "micro_batches": len(micro), "examples": total["examples"],
           "computed_tokens": total["computed"], "nonpad_tokens": total["nonpad"],
           "real_tokens": total["trained"],
           "pad_fraction": 1 - total["nonpad"] / total["computed"] if total["computed"] else 0.0}
    marks = ([(start[0], start[1], 0)] if start else []) + list(step_ends)
    warmup = min(warmup, max(0, len(step_ends) - 2))  # keep at least two warm steps
    first = warmup if start else max(warmup - 1, 0)
    window = marks[first:]
    if len(window) >= 2:
        (w0, c0, m0), (w1, c1, m1) = window[0], window[-1]
        warm = micro[m0:m1]
        trained = sum(m["trained"] for m in warm)
        nonpad = sum(m["nonpad"] for m in warm)
        examples = sum(m.get("examples", 0) for m in warm)
        times = [b[0] - a[0] for a, b in zip(window, window[1:])]
        out.update(warm_steps=len(times), warm_seconds=w1 - w0, warm_cpu_seconds=c1 - c0,
                   real_tokens_per_s=trained / (w1 - w0) if w1 > w0 else 0.0,
                   nonpad_tokens_per_s=nonpad / (w1 - w0) if w1 > w0 else 0.0,
                   examples_per_s=examples / (w1 - w0) if w1 > w0 else 0.0,
                   real_tokens_per_cpu_s=trained / (c1 - c0) if c1 > c0 else 0.0,
                   step_s_median=statistics.median(times), step_s_min=min(times),
                   step_s_max=max(times))
    if losses:
        k = max(1, len(losses) // 4)
        out["final_loss"] = sum(losses[-k:]) / k  # mean of the last quarter of logged losses
        out["first_loss"] = losses[0]
    return out


def matmul_peak(threads: int, size: int = 1024, repeats: int = 12) -> float:
    """Dense fp32 matmul FLOP/s of this machine now (best of ``repeats`` timed products)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best
