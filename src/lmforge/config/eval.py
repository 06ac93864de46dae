"""``eval:`` — task metrics, generation settings, best-checkpoint choice, early stopping.

The seeds' data configs write ``metrics: {name: f1, eval_calculate: true}``; ``eval.metrics``
accepts that mapping as an alias and expands it (before validation) into the explicit form
``metrics: [f1]``, ``during_training: true`` and ``best_metric: f1`` (the seed's metric picks the
saved checkpoint and drives early stopping). Keys given explicitly next to the alias win. The
resolved ``lmforge_config.yaml`` of a run shows the expanded form.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from lmforge.config.base import Section

# metric name -> the keys it reports (the names best_metric may use, without the eval_ prefix)
METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy",),
    "f1": ("f1", "f1_micro"),
    "precision": ("precision", "precision_micro"),
    "recall": ("recall", "recall_micro"),
    "exact_match": ("exact_match",),
    "rouge": ("rouge1", "rouge2", "rougeL"),
    "bleu": ("bleu",),
    "perplexity": ("perplexity",),
}
LOSS_KEYS = ("loss", "perplexity")  # computed by the Trainer's own evaluation, no generation


def metric_for_key(key: str) -> str | None:
    """The metric name that reports ``key`` (``f1_micro`` -> ``f1``), or None."""
    key = key.removeprefix("eval_")
    for name, keys in METRIC_KEYS.items():
        if key == name or key in keys:
            return name
    return None


class GenerationConfig(Section):
    max_new_tokens: int = Field(64, ge=1, description="tokens generated per answer")
    do_sample: bool = Field(False, description="sample instead of greedy decoding")
    temperature: float = Field(1.0, gt=0, description="sampling temperature")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    top_k: int = Field(0, ge=0, description="top-k sampling (0: off)")
    repetition_penalty: float = Field(1.0, gt=0, description="penalty for repeated tokens")
    num_return_sequences: int = Field(1, ge=1, description="answers sampled per input")
    seed: int | None = Field(None, description="seed for sampling (same seed, same answers)")

    @model_validator(mode="after")
    def _sampling_for_several(self):
        if self.num_return_sequences > 1 and not self.do_sample:
            raise ValueError("num_return_sequences > 1 needs do_sample: true (greedy decoding "
                             "returns the same answer every time)")
        return self


class EvalConfig(Section):
    metrics: list[str] = Field(default_factory=list, description=(
        "task metrics: accuracy, f1, precision, recall, exact_match, rouge, bleu, perplexity, or "
        "'module:function' (called with predictions, references; returns a float or a dict). "
        "The seeds' alias {name: f1, eval_calculate: true} means metrics [f1], during_training "
        "and best_metric f1"))
    during_training: bool = Field(False, description="generate on the eval set at each "
                                  "evaluation and compute the metrics (logged as eval_<name>)")
    mode: Literal["generate", "choices"] = Field(
        "generate", description="how an answer is obtained: generate (free generation, then "
        "answer_pattern), or choices (score every allowed answer by the model's log-likelihood "
        "of it as the whole assistant turn after the same prompt, pick the best; no "
        "generation, no unparseable answers)")
    choices: list[str] | None = Field(None, description="mode choices: the allowed answers "
                                      "(default: the distinct gold answers of the eval set)")
    generation: GenerationConfig = Field(default_factory=GenerationConfig,
                                         description="generation settings for evaluation")
    answer_pattern: str | None = Field(None, description="regex whose first group (or whole "
                                       "match) extracts the answer from a generation, e.g. "
                                       "'答案是：([A-D])'; label metrics compare extracted answers")
    normalize: bool = Field(True, description="compare labels after stripping, lower-casing and "
                            "removing punctuation (accuracy, f1, exact_match)")
    best_metric: str | None = Field(None, description="metric that picks the checkpoint kept in "
                                    "output_dir (e.g. f1, accuracy, rougeL, loss); computed even "
                                    "when not listed in metrics")
    greater_is_better: bool | None = Field(None, description="default: false for loss and "
                                           "perplexity, true otherwise")
    early_stopping_patience: int | None = Field(None, ge=1, description="stop after N "
                                                "evaluations without improvement of best_metric")
    max_samples: int | None = Field(None, ge=1, description="evaluate on at most N examples")
    batch_size: int | None = Field(None, ge=1, description="prompts generated together (default: "
                                   "train.eval_batch_size or train.batch_size; 8 outside training)")
    save_predictions: bool = Field(True, description="during training, write the generations of "
                                   "each evaluation to output_dir/predictions/step-N.jsonl")

    @model_validator(mode="before")
    @classmethod
    def _seed_alias(cls, data):
        if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
            return data
        alias, out = data["metrics"], dict(data)
        unknown = set(alias) - {"name", "eval_calculate"}
        if unknown or not isinstance(alias.get("name"), str):
            raise ValueError("metrics: as a mapping it must be {name: <metric>, eval_calculate: "
                             f"true|false}} (got keys {sorted(alias)})")
        out["metrics"] = [alias["name"]]
        out.setdefault("during_training", bool(alias.get("eval_calculate", False)))
        out.setdefault("best_metric", alias["name"])
        return out

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, v: list[str]) -> list[str]:
        for name in v:
            if ":" not in name and name not in METRIC_KEYS:
                import difflib

                close = difflib.get_close_matches(name, list(METRIC_KEYS), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else (
                    f" (known: {', '.join(METRIC_KEYS)}, or 'module:function')")
                raise ValueError(f"unknown metric '{name}'{hint}")
        return v

    @field_validator("answer_pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _choices(self):
        if self.choices is not None and self.mode != "choices":
            raise ValueError("choices is used by mode: choices (add mode: choices, or remove "
                             "choices)")
        if self.choices is not None and (not self.choices or len(set(self.choices)) <
                                         len(self.choices) or not all(c.strip() for c in
                                                                      self.choices)):
            raise ValueError("choices: a list of distinct, non-empty answers")
        if self.mode == "choices" and self.generation.num_return_sequences > 1:
            raise ValueError("mode choices scores every answer once: num_return_sequences > 1 "
                             "(voting over samples) applies to mode generate")
        return self

    @model_validator(mode="after")
    def _best_known(self):
        v = self.best_metric
        if v is None:
            return self
        key = v.removeprefix("eval_")
        user = any(":" in m for m in self.metrics)
        if key not in LOSS_KEYS and metric_for_key(key) is None and not user:
            raise ValueError(f"best_metric: unknown metric '{v}' (a key reported by eval.metrics "
                             "such as f1, f1_micro, accuracy, rougeL, bleu, or loss)")
        return self

    @property
    def best_key(self) -> str | None:
        """The Trainer metrics key of best_metric (``eval_f1``)."""
        if self.best_metric is None:
            return None
        return "eval_" + self.best_metric.removeprefix("eval_")

    @property
    def higher_is_better(self) -> bool:
        if self.greater_is_better is not None:
            return self.greater_is_better
        key = (self.best_metric or "loss").removeprefix("eval_")
        return not (key.endswith("loss") or key == "perplexity")

    @property
    def generation_metrics(self) -> list[str]:
        """Metrics computed from generations (metrics, plus the one best_metric needs)."""
        names = [m for m in self.metrics if m != "perplexity"]
        if self.best_metric:
            key = self.best_metric.removeprefix("eval_")
            name = metric_for_key(key)
            if name and name != "perplexity" and name not in names:
                names.append(name)
        return names
