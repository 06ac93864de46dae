"""``train:`` — optimisation, checkpointing and logging."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from lmforge.config.base import Section

# DeepSpeed configs shipped in lmforge/distributed/configs ("auto" values filled from train:)
DEEPSPEED_PRESETS = ("zero2", "zero3", "zero3_offload")


class TrainConfig(Section):
    output_dir: str = Field("runs/latest", description="where checkpoints, the final model, "
                            "metrics and logs go")
    epochs: float = Field(1.0, gt=0, description="passes over the training data")
    max_steps: int = Field(-1, description="stop after this many optimizer steps (-1: use epochs)")
    learning_rate: float = Field(1e-4, gt=0, description="peak learning rate")
    lr_scheduler: str = Field("cosine", description="transformers scheduler name")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="fraction of steps for warm-up")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, ge=0, description="gradient clipping (0: off)")
    optimizer: str = Field("adamw_torch", description="transformers optimizer name")
    batch_size: int = Field(4, ge=1, description="examples per device per step")
    eval_batch_size: int | None = Field(None, ge=1, description="default: batch_size")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    seed: int = Field(42, description="seed for initialisation, dropout and data order")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="mixed precision; 'auto' = fp32 on CPU, bf16 on a GPU that has it; "
        "'bf16' also on a CPU with native bf16 (AVX512-BF16/AMX: autocast, ~1.7x faster)")
    save_steps: int = Field(500, ge=1, description="save a checkpoint every N steps")
    save_total_limit: int | None = Field(None, ge=1, description="keep at most N checkpoints")
    eval_steps: int | None = Field(None, ge=1, description="evaluate every N steps (default: "
                                   "save_steps, when there is eval data)")
    logging_steps: int = Field(10, ge=1, description="log every N steps")
    resume: str | None = Field(None, description="'auto' (newest complete checkpoint in "
                               "output_dir) or a checkpoint path")
    overwrite: bool = Field(False, description="start over in an output_dir that already holds "
                            "a run (checkpoints or a final model): its files are deleted first. "
                            "Without it (and without train.resume) such a directory is refused")
    report_to: list[str] = Field(default_factory=lambda: ["tensorboard"],
                                 description="trackers: tensorboard (offline event files in "
                                 "output_dir/logs), wandb (offline without WANDB_API_KEY), mlflow "
                                 "(a local sqlite store next to output_dir unless "
                                 "MLFLOW_TRACKING_URI is set), or none")
    run_name: str | None = Field(None, description="run name shown by the trackers (default: the "
                                 "output_dir folder name)")
    deepspeed: str | None = Field(None, description="DeepSpeed ZeRO: zero2, zero3, zero3_offload "
                                  "(shipped configs) or a path to a DeepSpeed JSON config; 'auto' "
                                  "values are filled from this section")
    fsdp: bool | dict[str, Any] | None = Field(None, description="PyTorch FSDP: true, or a dict "
                                               "of transformers fsdp_config keys (version, "
                                               "cpu_offload, transformer_layer_cls_to_wrap, ...)")
    num_threads: int | None = Field(None, ge=1, description="CPU threads for torch (default: the "
                                    "physical cores available to this process)")
    fast_loss: bool = Field(True, description="compute the LM head only on trained positions "
                            "(the same loss and gradients; much faster when prompts are long); "
                            "falls back by itself where it cannot apply")
    group_by_length: bool = Field(False, description="batch examples of similar length together "
                                  "(in shuffled windows of 64 batches; the batch order is "
                                  "random): little padding without packing")
    pad_to_multiple_of: int | Literal["auto"] = Field(
        "auto", description="pad each padded batch's length up to a multiple of this (1: the "
        "longest example). auto: 16 when training in bf16 on the CPU, else 1. With a new "
        "sequence length in almost every batch (length grouping), oneDNN's bf16 path fragments "
        "the heap: 40 LoRA steps on SmolLM2 grew to 3.5 GB RSS, 2.2 GB with 16, at the same "
        "speed (docs/performance.md)")
    dataloader_workers: int = Field(0, ge=0, description="data loader worker processes")
    use_cpu: bool = Field(False, description="train on the CPU even when a GPU is present")
    nan_policy: Literal["skip", "stop"] = Field(
        "skip", description="a non-finite (NaN/Inf) loss or gradient: 'skip' the update (counted "
        "in train_skipped_steps; stops after max_bad_steps in a row) or 'stop' at the first one")
    max_bad_steps: int = Field(5, ge=1, description="stop with an error naming the batch after "
                               "this many non-finite steps in a row (nan_policy: skip)")
    loss_spike_factor: float | None = Field(5.0, gt=1, description="log a warning naming the "
                                            "batch when a batch's loss exceeds this multiple of "
                                            "the median of the recent losses and is at least 1 "
                                            "nat above it (null: off)")
    extra: dict[str, Any] = Field(default_factory=dict, description="extra keys forwarded to the "
                                  "transformers/trl arguments class (checked by lmforge validate)")

    @field_validator("pad_to_multiple_of")
    @classmethod
    def _positive_multiple(cls, value):
        if value != "auto" and value < 1:
            raise ValueError(f"expected auto or an integer >= 1, got {value}")
        return value

    @field_validator("deepspeed")
    @classmethod
    def _deepspeed_spec(cls, value):
        if value is not None and value not in DEEPSPEED_PRESETS and not value.endswith(".json"):
            raise ValueError(f"expected one of {', '.join(DEEPSPEED_PRESETS)} or a .json path, "
                             f"got '{value}'")
        return value

    @model_validator(mode="after")
    def _one_engine(self):
        if self.deepspeed and self.fsdp not in (None, False):
            raise ValueError("train.deepspeed and train.fsdp cannot both be set: pick one engine")
        return self

    @property
    def per_device_eval_batch(self) -> int:
        """Evaluation batch size per device: ``eval_batch_size``, else ``batch_size``."""
        return self.eval_batch_size or self.batch_size
