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
    """Trainer mixin: the GroupedSampler for training when ``group_by_length`` is set."""

    group_by_length: bool = False

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        lengths = lengths_of(dataset) if self.group_by_length else None
        if lengths is None:
            return super()._get_train_sampler(train_dataset)
        args = self.args
        group = args.per_device_train_batch_size * args.gradient_accumulation_steps \
            * max(1, args.world_size)
        return GroupedSampler(lengths, group, args.data_seed if args.data_seed is not None
                              else args.seed)
