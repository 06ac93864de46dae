"""Length-grouped batches (``train.group_by_length``): little padding without packing.

Padding costs compute in proportion to the spread of lengths inside a batch (random batches of
variable-length SFT data are ~25-30 % padding). Packing removes it too, but on a CPU (no
flash-attention varlen kernels) a packed block's block-diagonal mask still costs attention over
the whole block, so grouping similar lengths is the cheaper fix there.

Why not transformers' ``LengthGroupedSampler``: its mega-batches are
``min(len // (4 * batch), 50)`` batches, so on a few hundred examples it groups almost nothing,
and inside a mega-batch the batches run from longest to shortest. Here: a seeded permutation is
cut into windows of ``WINDOW`` groups, each window is sorted by length and cut into groups (one
group = one optimizer step: batch x grad_accum x processes), then the order of the groups is
shuffled; only the last group of the epoch may be short, and it stays last so the data loader's
batches stay aligned with the groups. Every example is seen exactly once per epoch, the order is
a function of (seed, epoch) only, so resuming skips to the same place.
"""

from __future__ import annotations

WINDOW = 64  # groups sorted together


class GroupedSampler:
    """Yields dataset indices; consecutive ``group`` indices have similar lengths."""

    def __init__(self, lengths: list[int], group: int, seed: int, window: int = WINDOW):
        self.lengths, self.group, self.seed, self.window = list(lengths), max(1, group), seed, \
            window
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def groups(self) -> list[list[int]]:
        import torch

        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(len(self.lengths), generator=gen).tolist()
        full = len(perm) // self.group * self.group
        size = self.group * self.window
        groups = []
        for start in range(0, full, size):
            chunk = sorted(perm[start:min(start + size, full)], key=lambda i: self.lengths[i])
            groups += [chunk[j:j + self.group] for j in range(0, len(chunk), self.group)]
        order = torch.randperm(len(groups), generator=gen).tolist()
        groups = [groups[i] for i in order]
        if full < len(perm):
            groups.append(perm[full:])  # the short last group
        return groups

    def __iter__(self):
        for group in self.groups():
            yield from group


def lengths_of(dataset) -> list[int] | None:
    names = getattr(dataset, "column_names", None) or []
    if "input_ids" not in names:
        return None
    return [len(ids) for ids in dataset["input_ids"]]


class LengthGroupedMixin:
    """Trainer mixin: the training DataLoader draws from a GroupedSampler when
    ``group_by_length`` is set. Built in ``get_train_dataloader`` (the Trainer's documented
    override point) the way the Trainer builds its own: the same collator and loader settings,
    then ``accelerator.prepare``, which shards the batches over processes (consecutive batches of
    a group go to different processes: one group is one optimizer step of the whole run)."""

    group_by_length: bool = False

    def grouped_sampler(self) -> GroupedSampler | None:
        lengths = lengths_of(self.train_dataset) if self.group_by_length else None
        if lengths is None:
            return None
        args = self.args
        group = args.per_device_train_batch_size * args.gradient_accumulation_steps \
            * max(1, args.world_size)
        return GroupedSampler(lengths, group, args.data_seed if args.data_seed is not None
                              else args.seed)

    def get_train_dataloader(self):
        sampler = self.grouped_sampler()
        if sampler is None:
            return super().get_train_dataloader()
        from functools import partial

        from torch.utils.data import DataLoader
        from transformers.trainer_utils import seed_worker

        args = self.args
        params = {"batch_size": args.train_batch_size, "sampler": sampler,
                  "collate_fn": self.data_collator, "drop_last": args.dataloader_drop_last,
                  "num_workers": args.dataloader_num_workers,
                  "pin_memory": args.dataloader_pin_memory,
                  "worker_init_fn": partial(seed_worker, num_workers=args.dataloader_num_workers,
                                            rank=args.process_index)}
        if args.dataloader_num_workers > 0:  # torch refuses these without workers
            params["persistent_workers"] = args.dataloader_persistent_workers
            params["prefetch_factor"] = args.dataloader_prefetch_factor
        return self.accelerator.prepare(DataLoader(self.train_dataset, **params))
