"""Reward-hacking diagnostics for stages ppo and grpo, as a ``TrainerCallback``.

At the start of training, at every evaluation and at the end, the callback samples one completion
for each of a fixed set of prompts (the held-out prompts, else the first training prompts; at most
``<stage>.diagnostic_samples``) with the stage's sampling settings and a fixed seed (the training
RNG is left untouched), and measures them with lmforge.eval.diversity: distinct-1/2, the share of
the most frequent opening, the mean length in words, and the KL to the base model when there is
one to compare with (the policy with its adapter disabled, or a reference model). The numbers go
into the evaluation's log entry as ``diag_*`` (and so TensorBoard and the history), and
``summary()`` gives the first and the last for metrics.json. When the most frequent opening
exceeds ``<stage>.collapse_threshold`` of the samples, a warning is logged; so is a KL to the base
above ``<stage>.drift_threshold`` nats per completion token. The second catches what distinct-n
cannot: a policy that writes varied text the reward likes but the base model would not (a word
salad of positive words scores high on a sentiment reward with no phrase repeated).

Both stages fire these events: the Trainer (grpo) and lmforge's PPO loop (rl/events.py).
"""

from __future__ import annotations

import logging

import torch
from transformers import TrainerCallback

from lmforge.eval.diversity import collapse_warning, diagnostics
from lmforge.rl.functional import kl_estimate
from lmforge.rl.rollout import forward, sample
from lmforge.rl.state import is_peft

log = logging.getLogger(__name__)

PREFIX = "diag_"
SEED = 1234


@torch.no_grad()
def kl_to_reference(policy, batch, temperature: float, reference=None) -> torch.Tensor | None:
    """Per-sample KL(policy || reference) of sampled completions: the sum over the completion
    tokens of Schulman's k3 estimate (r - 1) - log r, r = p_ref / p_policy (unbiased for samples
    of the policy and never negative, unlike the plain log-ratio on a few samples). The
    reference is ``reference``, else the policy with its adapter disabled; None when there is
    neither."""
    if reference is None and not is_peft(policy):
        return None
    logprobs, _, _ = forward(policy, batch, temperature)
    if reference is None:
        with policy.disable_adapter():
            ref, _, _ = forward(policy, batch, temperature)
    else:
        ref, _, _ = forward(reference, batch, temperature)
    return (kl_estimate(logprobs, ref, "k3") * batch.mask).sum(-1)


def drift_warning(found: dict, threshold: float | None) -> str | None:
    """A warning when the KL to the base per completion token exceeds ``threshold``."""
    per_token = found.get("kl_per_token")
    if threshold is None or per_token is None or per_token <= threshold:
        return None
    return (f"KL to the base model {per_token:.2f} nats per token ({found['kl_to_base']:.1f} per "
            f"completion; threshold {threshold:g}): the policy writes text the base model finds "
            "unlikely. Read the samples: a reward can be gamed with varied but meaningless text "
            "(e.g. a salad of positive words) that distinct-n does not catch. Raise beta / "
            "kl_coef, lower the learning rate or stop earlier")


class RLDiagnostics(TrainerCallback):
    def __init__(self, prompt_ids: list[list[int]], tokenizer, gen_config, eos_ids: list[int],
                 temperature: float, threshold: float, reference=None, batch_size: int = 16,
                 drift_threshold: float | None = None):
        self.prompt_ids, self.tokenizer, self.gen_config = prompt_ids, tokenizer, gen_config
        self.eos_ids, self.temperature, self.threshold = eos_ids, temperature, threshold
        self.reference, self.batch_size = reference, batch_size
        self.drift_threshold = drift_threshold
        self.results: dict[int, dict] = {}  # step -> measurement

    @torch.no_grad()
    def measure(self, model) -> dict:
        """diversity.diagnostics of fresh samples, plus kl_to_base when it can be computed."""
        device = next(model.parameters()).device
        training = model.training
        model.eval()
        texts, kls, tokens = [], [], 0
        devices = [device.index or 0] if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(SEED)
                for i in range(0, len(self.prompt_ids), self.batch_size):
                    batch = sample(model, self.prompt_ids[i:i + self.batch_size],
                                   self.gen_config, self.tokenizer.pad_token_id, self.eos_ids,
                                   device)
                    ids = [batch.response[j, :n].tolist()
                           for j, n in enumerate(batch.mask.sum(-1).tolist())]
                    texts += self.tokenizer.batch_decode(ids, skip_special_tokens=True)
                    kl = kl_to_reference(model, batch, self.temperature, self.reference)
                    kls += kl.tolist() if kl is not None else []
                    tokens += int(batch.mask.sum())
        finally:
            model.train(training)
        found = diagnostics(texts)
        if kls:
            found["kl_to_base"] = sum(kls) / len(kls)
            found["kl_per_token"] = sum(kls) / max(tokens, 1)
        return found

    def _at(self, state, model) -> dict:
        step = state.global_step
        if step not in self.results and model is not None and self.prompt_ids:
            found = self.results[step] = self.measure(model)
            if state.is_world_process_zero:
                kl = f"  kl_to_base {found['kl_to_base']:.3f}" if "kl_to_base" in found else ""
                log.info("diagnostics at step %d (%d samples): distinct-1 %.3f  distinct-2 %.3f"
                         "  top opening %.0f%% (%r)  mean words %.1f%s", step, found["samples"],
                         found["distinct_1"], found["distinct_2"],
                         100 * found["top_opening_share"], found["top_opening"],
                         found["mean_words"], kl)
                for warning in (collapse_warning(found, self.threshold),
                                drift_warning(found, self.drift_threshold)):
                    if warning:
                        log.warning("step %d: %s", step, warning)
        return self.results.get(step, {})

    @staticmethod
    def numbers(found: dict) -> dict:
        return {PREFIX + k: v for k, v in found.items() if isinstance(v, float)}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0:
            self._at(state, model)

    def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
        values = self.numbers(self._at(state, model))
        if metrics is not None:
            metrics.update(values)
        last = state.log_history[-1] if state.log_history else None
        if last is not None and last.get("step") == state.global_step and \
                any(k.startswith("eval_") for k in last):
            last.update(values)  # the evaluation's entry: the history, curves and TensorBoard

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self._at(state, model)

    def summary(self) -> dict:
        """The last measurement as ``diag_*`` and the first as ``diag_*_start`` (metrics.json)."""
        if not self.results:
            return {}
        first, last = self.results[min(self.results)], self.results[max(self.results)]
        out = self.numbers(last)
        if min(self.results) < max(self.results):
            out.update({f"{k}_start": v for k, v in self.numbers(first).items()})
        out[PREFIX + "top_opening"] = last["top_opening"]
        out[PREFIX + "collapsed"] = collapse_warning(last, self.threshold) is not None
        if "kl_per_token" in last:
            out[PREFIX + "drifted"] = drift_warning(last, self.drift_threshold) is not None
        return out


def build(method, tokenizer, prompt_ids: list[list[int]], eos_ids: list[int],
          reference=None) -> RLDiagnostics | None:
    """The callback for a ppo:/grpo: block, on at most ``method.diagnostic_samples`` prompts
    (None when that is 0)."""
    from lmforge.rl.rollout import generation_config

    if not method.diagnostic_samples or not prompt_ids:
        return None
    return RLDiagnostics(prompt_ids[:method.diagnostic_samples], tokenizer,
                         generation_config(method, tokenizer, eos_ids), eos_ids,
                         method.temperature, method.collapse_threshold, reference,
                         drift_threshold=method.drift_threshold)
