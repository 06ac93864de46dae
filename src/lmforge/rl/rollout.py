"""Rollouts: sample completions from the policy, then score them token by token.

Prompts are left-padded so every completion starts at the same column ``P``; position ids come
from the attention mask (as ``generate`` computes them), so the log-probabilities recomputed here
are those of the distribution that was sampled. A completion ends at its first end-of-turn token
(included in the mask); everything after it is padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmforge.rl.functional import entropy_from_logits, logprobs_from_logits


@dataclass
class Batch:
    """Prompt + completion ids of one rollout, and which completion tokens are real."""

    input_ids: torch.Tensor  # [B, P + R]
    attention_mask: torch.Tensor  # [B, P + R]
    prompt_len: int  # P
    mask: torch.Tensor  # [B, R] real completion tokens (end-of-turn included)

    @property
    def response(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_len:]

    def select(self, idx: torch.Tensor) -> "Batch":
        return Batch(self.input_ids[idx], self.attention_mask[idx], self.prompt_len,
                     self.mask[idx])


def left_pad(seqs: list[list[int]], pad_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
    return ids.to(device), mask.to(device)


def response_mask(response: torch.Tensor, eos_ids: list[int]) -> torch.Tensor:
    """1 on each token up to and including the first end-of-turn token, 0 after it."""
    is_eos = torch.isin(response, torch.tensor(eos_ids, device=response.device))
    ended_before = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
    return (~ended_before).long()


def generation_config(method, tokenizer, eos_ids: list[int]):
    """A fresh config: a model's own generation_config.json (repetition penalty, ...) would
    change the sampled distribution away from the one whose log-probs PPO computes."""
    from transformers import GenerationConfig

    # top_k 0 ("off") must stay 0: generate() fills a None with its global default of 50, which
    # would silently sample from a truncated distribution
    return GenerationConfig(do_sample=True, max_new_tokens=method.max_new_tokens,
                            temperature=method.temperature, top_k=method.top_k,
                            top_p=method.top_p, eos_token_id=eos_ids,
                            pad_token_id=tokenizer.pad_token_id, use_cache=True)


@torch.no_grad()
def sample(policy, prompt_ids: list[list[int]], gen_config, pad_id: int, eos_ids: list[int],
           device) -> Batch:
    ids, attn = left_pad(prompt_ids, pad_id, device)
    out = policy.generate(input_ids=ids, attention_mask=attn, generation_config=gen_config)
    P = ids.shape[1]
    mask = response_mask(out[:, P:], eos_ids)
    attention = torch.cat([attn, mask], dim=1)
    return Batch(out, attention, P, mask)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def forward(policy, batch: Batch, temperature: float, value_head=None,
            critic_backbone=None, with_entropy: bool = False, detach_shared: bool = False):
    """Log-probs of the completion tokens ``[B, R]``, values ``[B, R]`` (when a critic is given:
    a head on the policy's last hidden state, or on a separate backbone's) and, if asked, the
    entropy per token. ``detach_shared``: a head on the policy's hidden states reads them
    detached, so the value loss trains the head alone, never the policy."""
    return forward_with_features(policy, batch, temperature, value_head, critic_backbone,
                                 with_entropy, detach_shared)[:3]


def forward_with_features(policy, batch: Batch, temperature: float, value_head=None,
                          critic_backbone=None, with_entropy: bool = False,
                          detach_shared: bool = False):
    """``forward``'s (log-probs, values, entropy) and the value head's input ``[B, R, H]`` (the
    hidden states it reads; None without a critic)."""
    # the positions that predict the completion tokens, counted from the end (prompt-learning
    # adapters prepend virtual tokens to the outputs)
    R = batch.mask.shape[1]
    shared = value_head is not None and critic_backbone is None
    out = policy(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                 position_ids=position_ids(batch.attention_mask), use_cache=False,
                 output_hidden_states=shared)
    logits = out.logits[:, -R - 1:-1] / temperature
    logprobs = logprobs_from_logits(logits, batch.response)
    values = features = None
    if value_head is not None:
        if shared:
            hidden = out.hidden_states[-1]
        else:
            hidden = critic_backbone(input_ids=batch.input_ids,
                                     attention_mask=batch.attention_mask,
                                     position_ids=position_ids(batch.attention_mask),
                                     use_cache=False, output_hidden_states=True).hidden_states[-1]
        features = hidden[:, -R - 1:-1]
        if shared and detach_shared:
            features = features.detach()
        values = value_head(features)
    entropy = entropy_from_logits(logits.detach()) if with_entropy else None
    return logprobs, values, entropy, features


class ValueHead(torch.nn.Module):
    """A linear map from the last hidden state to a scalar value per position. Zero-initialised:
    the first advantages are the plain returns, and the policy trunk receives no value gradient
    until the head has learnt something."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.summary = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.summary.weight)
        torch.nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.summary(hidden.to(self.summary.weight.dtype)).squeeze(-1)
