"""A trained reward model (``stage: rm`` output) as a reward function.

It scores ``prompt + completion + end-of-turn`` — the same text form the reward model was trained
on (the rendered prompt followed by the answer as the template writes it) — with plain
``AutoModelForSequenceClassification``, so any sequence-classification model with one label works.
"""

from __future__ import annotations

from pathlib import Path

from lmforge.errors import ModelError
from lmforge.rewards.builtin import completion_text


class RewardModelScorer:
    __name__ = "reward_model"

    def __init__(self, path: str, device=None, batch_size: int = 16):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from lmforge.model.loader import check_weights_are_safe

        if not Path(path).is_dir():
            raise ModelError(f"reward_model: '{path}' is not a directory",
                             "train one with stage rm and give its output_dir")
        check_weights_are_safe(path, allow_pickle=False)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                path, dtype=torch.float32, use_safetensors=True)
        except (OSError, ValueError) as exc:
            raise ModelError(f"reward_model: cannot load '{path}' as a sequence classifier: "
                             f"{exc}") from exc
        if self.model.config.num_labels != 1:
            raise ModelError(f"reward_model: '{path}' has {self.model.config.num_labels} labels; "
                             "a reward model has exactly one")
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.device = device or torch.device("cpu")
        self.model.to(self.device).eval().requires_grad_(False)
        self.batch_size = batch_size

    def text(self, prompt: str, completion) -> str:
        eos = self.tokenizer.eos_token or ""
        answer = completion_text(completion)
        return prompt + answer + ("" if answer.endswith(eos) else eos)

    def __call__(self, prompts: list, completions: list, **kwargs) -> list[float]:
        import torch

        texts = [self.text(str(p), c) for p, c in zip(prompts, completions)]
        scores: list[float] = []
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "right"
        try:
            for i in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(texts[i:i + self.batch_size], add_special_tokens=False,
                                     padding=True, return_tensors="pt").to(self.device)
                with torch.no_grad():
                    logits = self.model(**enc, use_cache=False).logits
                scores += logits[:, 0].float().tolist()
        finally:
            self.tokenizer.padding_side = side
        return scores
