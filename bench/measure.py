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


def feature_counts(features: list | None) -> dict | None:
    """Non-pad tokens and examples of the features a collator is given, read BEFORE collation
    (collators may change them and add padding of their own). A packed row whose attention mask
    holds segment ids 1, 2, ... (LLaMA-Factory's neat packing, padded to the block length) has
    one example per id and its zeros are padding; a packed row with position ids (lmforge's) has
    one example per restart at 0, one with ``seq_lengths`` (trl's) one per length; any other row
    is one example of real tokens only."""
    if not features or not isinstance(features[0], dict) or "input_ids" not in features[0]:
        return None
    nonpad = examples = 0
    for f in features:
        mask = f.get("attention_mask")
        mask = list(mask) if mask is not None else None
        if mask and max(mask) > 1:
            nonpad += sum(1 for m in mask if m)
            examples += len({m for m in mask if m})
        elif f.get("position_ids") is not None:
            nonpad += len(f["input_ids"])
            examples += sum(1 for p in f["position_ids"] if p == 0)
        elif f.get("seq_lengths") is not None:  # trl's packed rows
            nonpad += len(f["input_ids"])
            examples += len(f["seq_lengths"])
        else:
            nonpad += len(f["input_ids"])
            examples += 1
    return {"nonpad": nonpad, "examples": examples}


def batch_counts(batch: dict, pre: dict | None = None) -> dict:
    """computed / non-pad / trained token counts and the examples of one collated batch (a
    packed row holds several: each starts where its position ids restart at 0 on a real
    token). ``pre``: ``feature_counts`` of the features the batch was collated from."""
    ids = batch.get("input_ids")
    computed = int(ids.numel()) if ids is not None else 0
    pos, mask = batch.get("position_ids"), batch.get("attention_mask")
    if pre is not None and pre.get("examples") is not None:
        examples = pre["examples"]
    elif pos is not None and getattr(pos, "ndim", 0) == 2:
        starts = pos == 0
        if mask is not None and getattr(mask, "shape", None) == pos.shape:
            starts = starts & (mask != 0)
        examples = int(starts.sum())
    else:
        examples = int(ids.shape[0]) if ids is not None and getattr(ids, "ndim", 0) == 2 else 0
    if pre is not None:
        nonpad = pre["nonpad"]
    elif mask is not None and getattr(mask, "ndim", 0) == 2:
        nonpad = int((mask != 0).sum())
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
        pre = feature_counts(features)
        batch = self.collator(features)
        self.recorder.pending.append(batch_counts(batch, pre))
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
        self.probe = None  # bench.flops.Probe on the trained model, from the first step on
        self.facts: dict = {}

    def install(self) -> None:
        from transformers import Trainer

        recorder = self
        get_loader, step = Trainer.get_train_dataloader, Trainer.training_step

        def get_train_dataloader(trainer, *args, **kwargs):
            if not isinstance(trainer.data_collator, _Counting):
                trainer.data_collator = _Counting(trainer.data_collator, recorder)
            return get_loader(trainer, *args, **kwargs)

        def training_step(trainer, *args, **kwargs):
            counts = dict(recorder.pending.popleft() if recorder.pending else
                          {"computed": 0, "nonpad": 0, "trained": 0, "examples": 0})
            before = recorder.probe.snapshot() if recorder.probe else None
            out = step(trainer, *args, **kwargs)
            if before is not None:
                after = recorder.probe.snapshot()
                counts["head"] = after["head"] - before["head"]
                counts["head_recompute"] = after["head_recompute"] - before["head_recompute"]
                counts["layers"] = [b - a for a, b in zip(before["layers"], after["layers"])]
            recorder.micro.append(counts)
            return out

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
            def on_train_begin(self, args, state, control, model=None, **kwargs):
                if model is not None and recorder.probe is None:
                    recorder.attach(model, args)
                recorder.start = (time.perf_counter(), time.process_time())

            def on_step_end(self, args, state, control, **kwargs):
                recorder.step_ends.append((time.perf_counter(), time.process_time(),
                                           len(recorder.micro)))

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    recorder.losses.append(float(logs["loss"]))

        return StepClock()

    def attach(self, model, args) -> None:
        """Probe the model being trained and note the precision and checkpointing it runs with."""
        from bench.flops import Probe

        self.probe = Probe(model)
        self.facts = {"device": next(model.parameters()).device.type,"precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
                      "gradient_checkpointing": bool(args.gradient_checkpointing)
                      or _checkpointing(model)}

    def summary(self, warmup: int = 1) -> dict:
        out = summarize(self.micro, self.step_ends, self.losses, self.start, warmup)
        out.update(self.facts)
        if self.probe is not None and "warm_micro" in out:
            out.update(executed(self.probe, self.micro[slice(*out["warm_micro"])],
                                out["warm_seconds"]))
        return out


def _checkpointing(model) -> bool:
    """Activation checkpointing switched on in any decoder layer (set by the trainer or, as
    LLaMA-Factory does, by the tool on the model before the trainer sees it)."""
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


def executed(probe, window: list[dict], seconds: float) -> dict:
    """Executed matmul FLOPs of the warm micro-batches (bench/flops.py) from what the probe
    measured: positions through every layer (recomputation included) and the LM head."""
    from bench.flops import executed_flops

    totals = {"forward": 0, "recompute": 0, "backward": 0, "total": 0}
    for m in window:
        if "layers" not in m:
            continue
        f = executed_flops(probe.shape, m["computed"], m["head"], tuple(probe.input_grad),
                           m["layers"], head_recompute=m.get("head_recompute", 0))
        for k in totals:
            totals[k] += f[k]
    head = sum(m.get("head", 0) for m in window)
    computed = sum(m["computed"] for m in window)
    return {"executed_flops": totals, "executed_flops_per_s": totals["total"] / seconds
            if seconds > 0 else 0.0, "head_fraction": head / computed if computed else 0.0,
            "layer_input_grad": list(probe.input_grad),
            "trainable_parameters": probe.trainable}


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
                   warm_micro=[m0, m1],
                   real_tokens_per_s=trained / (w1 - w0) if w1 > w0 else 0.0,
                   nonpad_tokens_per_s=nonpad / (w1 - w0) if w1 > w0 else 0.0,
                   examples_per_s=examples / (w1 - w0) if w1 > w0 else 0.0,
                   examples_per_cpu_s=examples / (c1 - c0) if c1 > c0 else 0.0,
                   real_tokens_per_cpu_s=trained / (c1 - c0) if c1 > c0 else 0.0,
                   step_s_median=statistics.median(times), step_s_min=min(times),
                   step_s_max=max(times))
    if losses:
        k = max(1, len(losses) // 4)
        out["final_loss"] = sum(losses[-k:]) / k  # mean of the last quarter of logged losses
        out["first_loss"] = losses[0]
    return out


def matmul_peak(threads: int, size: int = 1024, repeats: int = 12, dtype: str = "float32",
                device: str = "cpu") -> float:
    """Dense matmul FLOP/s of this machine now: the best of ``repeats`` timed ``size``-square
    products in ``dtype`` on ``device`` (``cuda``: synchronised around each product)."""
    import torch

    torch.set_num_threads(threads)
    kind = getattr(torch, dtype)
    a = torch.randn(size, size, device=device).to(kind)
    b = torch.randn(size, size, device=device).to(kind)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best
