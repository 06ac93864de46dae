"""The stage table: each training stage, its method block, its recipe module and the keys it does
NOT honour, each with the reason.

Generated from it: the stage list (``config.run.Stage`` / ``METHOD_KEYS``), the method blocks
(``config.methods.METHOD_BLOCKS``) and the dispatch (``lmforge.stages.STAGES``).
``config.crosscheck`` makes every key listed here a validation error when the user set it to a
value other than its default (``values``: only those values are refused), with the reason. A stage
that starts honouring a key deletes its line here (tests/unit/test_stage_table.py keeps the table,
the generated lists and the recipes in agreement).

What each stage reads was taken from the recipes (stages/*.py, training/preference_common.py,
data/preference_data.py): pt and sft run ``stages.sft.train_lm`` (the lmforge data pipeline,
packing, length grouping, the fast loss and the evaluation hooks of ``lmforge.eval.training``);
rm/dpo/kto/orpo/grpo run trl trainers that tokenize and batch by themselves and compute their own
losses; ppo is lmforge's own loop (``lmforge.rl``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unhonoured:
    key: str  # "section.field"
    reason: str
    values: tuple = ()  # refuse only these values (empty: any value other than the default)


@dataclass(frozen=True)
class StageSpec:
    name: str
    method: str  # the method block class in lmforge.config.methods
    recipe: str  # the module whose run(cfg) trains this stage
    summary: str
    unhonoured: tuple[Unhonoured, ...] = ()


def _trl(trainer: str, loss: str) -> tuple[Unhonoured, ...]:
    """Keys of the lmforge SFT pipeline that a trl trainer (which tokenizes and batches its own
    data and computes its own loss) cannot use."""
    return (
        Unhonoured("data.packing", f"{trainer} batches padded examples; packing is implemented "
                   "for stages pt and sft"),
        Unhonoured("data.train_on", f"the {loss} is computed on the answer tokens; train_on "
                   "picks the trained turns of SFT conversations"),
        Unhonoured("train.group_by_length", "length-grouped batches need the tokenized datasets "
                   f"of pt/sft; {trainer} uses its own sampler"),
        Unhonoured("train.fast_loss", f"the fast loss is the causal-LM loss of pt/sft; this stage "
                   f"computes the {loss}"),
        Unhonoured("train.pad_to_multiple_of", f"the padded batches are lmforge's pt/sft "
                   f"collator's; {trainer} pads its own"),
    )


_AFTER_TRAINING_ONLY = "this stage evaluates its own loss/metrics during training (lmforge eval "\
    "computes task metrics on the finished run)"
_EVAL_HOOKS = (
    Unhonoured("eval.during_training", "generation metrics during training are implemented for "
               f"stages pt and sft; {_AFTER_TRAINING_ONLY}"),
    Unhonoured("eval.best_metric", "the best-checkpoint choice is implemented for stages pt and "
               "sft; this stage keeps the final weights"),
    Unhonoured("eval.greater_is_better", "it only qualifies eval.best_metric, which this stage "
               "does not use"),
    Unhonoured("eval.early_stopping_patience", "early stopping is implemented for stages pt and "
               "sft"),
    Unhonoured("eval.save_predictions", "predictions are written by the generation metrics "
               "during training, which this stage does not run"),
)
_NOT_GENERATIVE = tuple(
    Unhonoured(f"eval.{key}", "a reward model scores text and never generates: there are no "
               "generation metrics for it (its evaluation reports pairwise accuracy)")
    for key in ("metrics", "generation", "answer_pattern", "normalize", "max_samples",
                "batch_size"))


def _rl(stage: str) -> tuple[Unhonoured, ...]:
    return (
        Unhonoured("data.max_target_length", f"completions are generated, up to "
                   f"{stage}.max_new_tokens tokens"),
        Unhonoured("data.truncation", "the prompt is the whole input (the completion is "
                   "generated): an over-long prompt loses its beginning (truncate_prompt)",
                   values=("truncate_response",)),
        Unhonoured("data.truncation", f"dropping over-long prompts is not implemented for stage "
                   f"{stage}; they lose their beginning (truncate_prompt)", values=("drop",)),
    )


STAGE_TABLE: dict[str, StageSpec] = {s.name: s for s in (
    StageSpec("pt", "PTMethod", "lmforge.stages.pt", "(continued) pretraining on raw text", (
        Unhonoured("data.train_on", "pretraining trains every token"),
        Unhonoured("data.truncation", "long documents are cut into pieces of data.max_length "
                   "tokens; nothing is dropped or cut away"),
        Unhonoured("data.max_source_length", "raw text has no prompt"),
        Unhonoured("data.max_target_length", "raw text has no response"),
        Unhonoured("eval.during_training", "generation metrics need prompt/answer examples; "
                   "pretraining text has none (eval_loss is reported)"),
        Unhonoured("eval.metrics", "generation metrics need prompt/answer examples; pretraining "
                   "text has none (eval_loss is reported)"),
    )),
    StageSpec("sft", "SFTMethod", "lmforge.stages.sft", "supervised fine-tuning"),
    StageSpec("rm", "RMMethod", "lmforge.stages.rm", "reward model on preference pairs",
              _trl("trl's RewardTrainer", "pairwise reward loss") + _EVAL_HOOKS
              + _NOT_GENERATIVE),
    StageSpec("dpo", "DPOMethod", "lmforge.stages.dpo", "direct preference optimisation",
              _trl("trl's DPOTrainer", "DPO loss") + _EVAL_HOOKS),
    StageSpec("kto", "KTOMethod", "lmforge.stages.kto", "Kahneman-Tversky optimisation",
              _trl("trl's KTOTrainer", "KTO loss") + _EVAL_HOOKS),
    StageSpec("orpo", "ORPOMethod", "lmforge.stages.orpo", "odds-ratio preference optimisation",
              _trl("trl's ORPOTrainer", "ORPO loss") + _EVAL_HOOKS),
    StageSpec("ppo", "PPOMethod", "lmforge.stages.ppo", "proximal policy optimisation", (
        *_trl("lmforge's PPO loop", "PPO loss"),
        Unhonoured("train.grad_accum", "every mini-batch of a rollout is one optimizer step; "
                   "set ppo.mini_batch_size instead"),
        *_rl("ppo"), *_EVAL_HOOKS)),
    StageSpec("grpo", "GRPOMethod", "lmforge.stages.grpo", "group relative policy optimisation",
              _trl("trl's GRPOTrainer", "GRPO loss") + _rl("grpo") + _EVAL_HOOKS),
)}

STAGE_NAMES: tuple[str, ...] = tuple(STAGE_TABLE)
