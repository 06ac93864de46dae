"""The one table of foreign config names: LLaMA-Factory's train arguments, transformers'
``TrainingArguments`` (which LLaMA-Factory passes through), and the CausalLM-Lit seed's model-file
blocks, each with the lmforge key it becomes, how its value translates, or why it has none.

Three users: ``lmforge validate`` (config/report.py) turns an unknown key that is in the table
into ``cutoff_len → data.max_length`` instead of a generic did-you-mean; ``lmforge convert
llamafactory`` (lmforge/convert/) translates a whole file through ``Alias.translate``; and
docs/migration.md is generated from it (``render_markdown``; tests/unit/test_docs_migration.py
keeps it current).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmforge.config import alias_values as V
from lmforge.config.alias_values import Keys, NotMapped
from lmforge.config.aliases_seeds import CLM, LIT, SEED_ROWS, TOOL  # noqa: F401 (re-exported)

LF = "LLaMA-Factory"
HF = "TrainingArguments"
BOTH = "LLaMA-Factory, TrainingArguments"

@dataclass(frozen=True)
class Alias:
    name: str  # the foreign key
    target: str | None  # the lmforge key; None: no equivalent (``note`` says why)
    origin: str
    note: str = ""  # how the value translates, or why there is no equivalent
    value: Callable[[Any, dict], Keys] | None = None  # (value, whole foreign file) -> keys

    def translate(self, value: Any, source: dict) -> Keys:
        """The lmforge keys for ``value``; {} when it is the default (nothing to set). Raises
        NotMapped when there is no equivalent."""
        if self.value is not None:
            return self.value(value, source)
        if self.target is None:
            raise NotMapped(self.note)
        return {self.target: value}


def _d(name, target, note="", value=None, origin=LF) -> Alias:
    return Alias(name, target, origin, note, value)


def _h(name, target, note="", value=None) -> Alias:
    return Alias(name, target, HF, note, value)


def _b(name, target, note="", value=None) -> Alias:
    return Alias(name, target, BOTH, note, value)


ALIASES: tuple[Alias, ...] = (
    # --- model --------------------------------------------------------------------------------
    _d("model_name_or_path", "model.path", "a hub id must be in the local cache: lmforge works "
       "offline"),
    _d("adapter_name_or_path", "adapter.path", "one adapter: lmforge continues one",
       V.one_adapter),
    _d("trust_remote_code", "model.trust_remote_code"),
    _d("template", "model.template", "alpaca, chatml, llama2, llama3, qwen keep their name, "
       "empty is plain; any other name becomes auto, the tokenizer's own chat template",
       V.template),
    _d("model_revision", "model.revision"),
    _d("flash_attn", "model.attn_implementation", "auto, disabled → eager, sdpa, "
       "fa2 → flash_attention_2", V.flash_attn),
    _d("new_special_tokens", "model.new_special_tokens", "comma list → list",
       lambda v, s: {"model.new_special_tokens": V.names(v)}),
    _d("disable_gradient_checkpointing", "model.gradient_checkpointing", "LLaMA-Factory "
       "checkpoints by default, lmforge does not: its inverse",
       lambda v, s: {"model.gradient_checkpointing": not v}),
    _h("gradient_checkpointing", "model.gradient_checkpointing"),
    _d("rope_scaling", None, "LLaMA-Factory derives the factor from cutoff_len; set "
       "model.rope_scaling: {type: linear|dynamic, factor: F}"),
    _d("cache_dir", None, "the hub download cache: lmforge reads the standard HF cache "
       "($HF_HOME); model.cache_dir is where converted GGUF models go"),
    _d("quantization_bit", "adapter.bits", "with finetuning_type lora: adapter.type qlora",
       V.quant_bit),
    _d("quantization_type", "adapter.quant_type"),
    _d("double_quantization", "adapter.double_quant"),
    _d("quantization_method", "adapter.type", "bnb only, as adapter.type: qlora",
       V.only("bnb", "lmforge quantizes with bitsandbytes only")),
    # --- method -------------------------------------------------------------------------------
    _d("finetuning_type", "adapter.type", "lora, or qlora with quantization_bit; full; freeze",
       V.finetuning_type),
    _d("do_train", None, "nothing to set: lmforge train trains",
       V.only(True, "lmforge train always trains; evaluate with lmforge eval")),
    _d("do_eval", None, "evaluation during training follows from data.eval; after training: "
       "lmforge eval RUN"),
    _d("do_predict", None, "lmforge predict RUN --input F --output F"),
    _d("lora_rank", "adapter.r", "adapter.alpha becomes 2 × r unless lora_alpha is given, "
       "as in LLaMA-Factory", V.lora_rank),
    _d("lora_alpha", "adapter.alpha"),
    _d("lora_dropout", "adapter.dropout"),
    _d("lora_target", "adapter.target_modules", "all → all-linear; comma list → list",
       V.lora_target),
    _d("additional_target", "adapter.modules_to_save", "comma list → list",
       lambda v, s: {"adapter.modules_to_save": V.names(v)}),
    _d("use_rslora", "adapter.use_rslora"),
    _d("use_dora", "adapter.use_dora"),
    _d("freeze_trainable_layers", "adapter.trainable_layers", "positive counts only",
       V.freeze_layers),
    _d("freeze_extra_modules", "adapter.trainable_modules", "comma list → list",
       lambda v, s: {"adapter.trainable_modules": V.names(v)}),
    _d("pref_beta", "dpo.beta", "kto.beta / orpo.beta for those stages", V.by_stage("beta")),
    _d("pref_loss", "dpo.loss", "sigmoid, hinge, ipo; orpo → stage orpo", V.pref_loss),
    _d("pref_ftx", None, "an SFT term in the DPO loss: use stage orpo, or dpo.loss: [sigmoid, "
       "sft] with dpo.loss_weights"),
    _d("dpo_label_smoothing", "dpo.label_smoothing"),
    _d("kto_chosen_weight", "kto.desirable_weight"),
    _d("kto_rejected_weight", "kto.undesirable_weight"),
    _d("ref_model", "dpo.reference_model"),
    _d("reward_model", "ppo.reward_model", "a directory from lmforge's stage rm"),
    _d("ppo_epochs", "ppo.ppo_epochs"),
    _d("ppo_target", "ppo.target_kl"),
    _d("ppo_whiten_rewards", "ppo.whiten_rewards"),
    _d("plot_loss", None, "nothing to set: every run writes its loss curves",
       V.nothing),
    # --- dataset ------------------------------------------------------------------------------
    _d("dataset", "data.train", "comma list → list of registry names; data.registry: "
       "<dataset_dir>/dataset_info.json", V.dataset),
    _d("dataset_dir", "data.registry", "its dataset_info.json, read with dataset",
       lambda v, s: {}),
    _d("eval_dataset", "data.eval", "comma list → list of registry names", V.eval_dataset),
    _d("val_size", "data.eval", "a fraction only", V.val_size),
    _d("cutoff_len", "data.max_length"),
    _d("max_samples", None, "lmforge's per-source samples also repeats a smaller source; to "
       "truncate, give data.train: [{path: NAME, samples: N}] where N is at most its size"),
    _d("packing", "data.packing"),
    _d("neat_packing", "data.packing", "lmforge's packing never attends across examples",
       V.flag("data.packing", True)),
    _d("train_on_prompt", "data.train_on", "true → all", V.flag("data.train_on", "all")),
    _d("mask_history", "data.train_on", "true → last_assistant",
       V.flag("data.train_on", "last_assistant")),
    _d("default_system", "data.system"),
    _d("preprocessing_num_workers", "data.num_proc"),
    _d("overwrite_cache", None, "nothing to set: lmforge's tokenized cache is keyed by the "
       "files and settings", V.nothing),
    _d("streaming", None, "lmforge tokenizes datasets up front and caches them"),
    _d("tokenized_path", None, "lmforge caches tokenized datasets itself, in data.cache_dir"),
    _d("max_new_tokens", "eval.generation.max_new_tokens"),
    # --- output and train (TrainingArguments, which LLaMA-Factory passes through) --------------
    _b("output_dir", "train.output_dir"),
    _b("overwrite_output_dir", "train.overwrite"),
    _b("logging_steps", "train.logging_steps"),
    _b("save_steps", "train.save_steps"),
    _b("save_total_limit", "train.save_total_limit"),
    _b("eval_steps", "train.eval_steps"),
    _b("max_steps", "train.max_steps"),
    _b("seed", "train.seed"),
    _b("learning_rate", "train.learning_rate"),
    _b("weight_decay", "train.weight_decay"),
    _b("max_grad_norm", "train.max_grad_norm"),
    _b("warmup_ratio", "train.warmup_ratio"),
    _b("per_device_train_batch_size", "train.batch_size"),
    _b("per_device_eval_batch_size", "train.eval_batch_size"),
    _b("gradient_accumulation_steps", "train.grad_accum"),
    _b("num_train_epochs", "train.epochs"),
    _b("lr_scheduler_type", "train.lr_scheduler"),
    _b("optim", "train.optimizer"),
    _b("bf16", "train.precision", "true → bf16", V.flag("train.precision", "bf16")),
    _b("fp16", "train.precision", "true → fp16", V.flag("train.precision", "fp16")),
    _b("report_to", "train.report_to", "a name or a list; none: no tracker", V.report_to),
    _b("run_name", "train.run_name"),
    _b("deepspeed", "train.deepspeed", "a .json path, or lmforge's zero2 / zero3 / "
       "zero3_offload"),
    _b("resume_from_checkpoint", "train.resume", "true → auto", V.resume),
    _b("dataloader_num_workers", "train.dataloader_workers"),
    _b("group_by_length", "train.group_by_length"),
    _b("use_cpu", "train.use_cpu"),
    _b("neftune_noise_alpha", "sft.neftune_noise_alpha"),
    _b("metric_for_best_model", "eval.best_metric", "without the eval_ prefix", V.best_metric),
    _b("greater_is_better", "eval.greater_is_better"),
    _b("load_best_model_at_end", None, "nothing to set: with eval.best_metric the best "
       "checkpoint is what output_dir keeps", V.nothing),
    _b("eval_strategy", None, "steps: lmforge evaluates every train.eval_steps when there "
       "is eval data", V.strategy),
    _b("save_strategy", None, "steps: every train.save_steps", V.strategy),
    _b("logging_strategy", None, "steps: every train.logging_steps", V.strategy),
    _b("save_only_model", None, "lmforge checkpoints keep the optimizer state so that a "
       "resume is exact", V.only(False, "lmforge "
                                   "checkpoints keep the optimizer state: a resume is exact")),
    _b("ddp_timeout", "train.extra.ddp_timeout", "forwarded to TrainingArguments"),
    _b("logging_dir", None, "the logs go to train.output_dir/logs"),
    _h("warmup_steps", "train.extra.warmup_steps", "forwarded to TrainingArguments (lmforge's "
       "own key is train.warmup_ratio)"),
    # --- the CausalLM-Lit seed's model file ------------------------------------------------------
    _d("pretrain", "model", "the block: pretrain.path → model.path, pretrain.args.* → model.*",
       origin=LIT),
    _d("peft", "adapter", "the block: r → adapter.r, lora_alpha → adapter.alpha, "
       "lora_dropout → adapter.dropout", origin=LIT),
    _d("quant", "adapter", "adapter.type: qlora; load_in_4bit → adapter.bits: 4, "
       "bnb_4bit_quant_type → adapter.quant_type", origin=LIT),
    _d("optim", "train", "the block: lr → train.learning_rate", origin=LIT),
    _d("lr", "train.learning_rate", origin=LIT),
    _d("datamodule", "data", "the block: data.train, data.format, data.columns", origin=LIT),
) + tuple(Alias(*row) for row in SEED_ROWS)

BY_NAME: dict[str, list[Alias]] = {}
for _alias in ALIASES:
    BY_NAME.setdefault(_alias.name, []).append(_alias)


def lookup(name: str, value: Any = None, origin: str | None = None) -> Alias | None:
    """The row for a foreign key; a name two tools use (``optim``) is told apart by its value:
    a mapping is CausalLM-Lit's block, a scalar transformers' optimizer name. ``origin`` (a
    converter's tool) prefers that tool's row."""
    rows = BY_NAME.get(name)
    if not rows:
        return None
    own = [r for r in rows if origin is not None and origin in r.origin.split(", ")]
    if len(own) == 1:
        return own[0]
    for row in rows:
        if (row.target is not None and "." not in row.target) == isinstance(value, dict):
            return row
    return rows[0]


def hint(name: str, value: Any = None) -> str | None:
    """``cutoff_len → data.max_length (a LLaMA-Factory name)`` for a key in the table, else
    None."""
    row = lookup(name, value)
    if row is None:
        return None
    who = f"a {' / '.join(row.origin.split(', '))} name"
    if row.target is None:
        return f"{name} ({who}) has no lmforge key: {row.note}"
    return f"{name} → {row.target} ({who}" + (f"; {row.note})" if row.note else ")")


def render_markdown() -> str:
    """The table of docs/migration.md (between its generated-table markers)."""
    lines = ["| key | from | lmforge | how |", "|---|---|---|---|"]
    for row in ALIASES:
        target = f"`{row.target}`" if row.target else "—"
        note = row.note.replace("|", "\\|")
        lines.append(f"| `{row.name}` | {row.origin} | {target} | {note} |")
    return "\n".join(lines) + "\n"
