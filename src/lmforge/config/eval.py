"""``eval:`` — task metrics, generation settings, best-checkpoint choice, early stopping."""

from __future__ import annotations

from pydantic import Field

from lmforge.config.base import Section


class GenerationConfig(Section):
    max_new_tokens: int = Field(64, ge=1, description="tokens generated per answer")
    do_sample: bool = Field(False, description="sample instead of greedy decoding")
    temperature: float = Field(1.0, gt=0, description="sampling temperature")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    top_k: int = Field(0, ge=0, description="top-k sampling (0: off)")
    repetition_penalty: float = Field(1.0, gt=0, description="penalty for repeated tokens")
    num_return_sequences: int = Field(1, ge=1, description="answers sampled per input")


class EvalConfig(Section):
    metrics: list[str] = Field(default_factory=list, description="task metrics: accuracy, f1, "
                               "exact_match, rouge, bleu, perplexity, or 'module:function'")
    during_training: bool = Field(False, description="generate on the eval set at each "
                                  "evaluation and compute the metrics")
    generation: GenerationConfig = Field(default_factory=GenerationConfig,
                                         description="generation settings for evaluation")
    answer_pattern: str | None = Field(None, description="regex whose first group extracts the "
                                       "answer from a generation")
    best_metric: str | None = Field(None, description="metric that picks the checkpoint kept in "
                                    "output_dir (e.g. f1, eval_loss)")
    greater_is_better: bool | None = Field(None, description="default: false for *loss, true "
                                           "otherwise")
    early_stopping_patience: int | None = Field(None, ge=1, description="stop after N "
                                                "evaluations without improvement")
    max_samples: int | None = Field(None, ge=1, description="evaluate on at most N examples")
