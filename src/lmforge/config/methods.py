"""Method blocks: one per stage, named after it (``sft:``, ``dpo:``, ...).

A stage without settings of its own still has an (empty) block class so that a block given for the
wrong stage is reported, and later stages add fields here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from lmforge.config.base import Section
from lmforge.config.stages import STAGE_TABLE


class PTMethod(Section):
    """Pretraining on raw text (causal LM loss on every token)."""

    add_eos: bool = Field(True, description="append EOS to every document")


class SFTMethod(Section):
    """Supervised fine-tuning on conversations."""

    neftune_noise_alpha: float | None = Field(None, gt=0, description="NEFTune embedding noise")


# --- preference and reinforcement-learning stages (rm, dpo, kto, orpo, ppo, grpo) -------------
# The loss names are the ones trl 1.x accepts (trl/trainer/dpo_config.py, kto_config.py,
# grpo_config.py); they are listed here so that a typo is a config error, not a crash mid-run.

DPOLoss = Literal["sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair",
                  "sppo_hard", "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft",
                  "sigmoid_norm"]
GRPOLoss = Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"]


class RewardFunction(Section):
    """One reward function with its weight and fixed keyword arguments."""

    function: str = Field(description="'module:function', 'path/to/file.py:function', or a "
                          "built-in name: exact_match, regex_match, length_penalty, sentiment, "
                          "contains; shaping penalties (<= 0) against reward hacking: "
                          "repetition_penalty, length_bounds, on_task (see docs/stages.md)")
    weight: float = Field(1.0, description="weight of this reward in the weighted sum")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="fixed keyword arguments "
                                   "passed on every call (e.g. {pattern: '^\\d+$'})")


RewardRef = str | RewardFunction


class RMMethod(Section):
    """Reward model: a scalar head on the base, trained on chosen/rejected pairs."""

    margin: float | None = Field(None, description="margin in the pairwise loss "
                                 "-log sigmoid(r_chosen - r_rejected - margin) for rows without a "
                                 "'margin' column (rows with one always use it)")
    center_rewards_coefficient: float | None = Field(None, ge=0, description="pull rewards "
                                                     "towards zero mean (0.01 is typical)")


class DPOMethod(Section):
    """Direct preference optimisation (and its trl loss variants: IPO, hinge, robust, ...)."""

    loss: DPOLoss | list[DPOLoss] = Field("sigmoid", description="trl loss type, or a list "
                                          "combined with loss_weights")
    loss_weights: list[float] | None = Field(None, description="weights of a list of losses")
    beta: float = Field(0.1, gt=0, description="strength of the pull towards the reference "
                        "model (IPO: the regularisation tau)")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="robust DPO / EXO: assumed "
                                   "probability that a preference label is flipped")
    reference_model: str | None = Field(None, description="a different frozen reference model "
                                        "(default: the base; with an adapter, the policy with "
                                        "its adapter disabled, so no second copy is loaded)")
    precompute_ref_log_probs: bool = Field(False, description="score the data with the "
                                           "reference once before training, then free it")

    @model_validator(mode="after")
    def _weights(self):
        n = len(self.loss) if isinstance(self.loss, list) else 1
        if self.loss_weights is not None and len(self.loss_weights) != n:
            raise ValueError(f"loss_weights has {len(self.loss_weights)} values for {n} losses")
        return self


class KTOMethod(Section):
    """Kahneman-Tversky optimisation on unpaired good/bad completions."""

    loss: Literal["kto", "apo_zero_unpaired"] = Field("kto", description="trl KTO loss type")
    beta: float = Field(0.1, gt=0, description="strength of the pull towards the reference")
    desirable_weight: float = Field(1.0, gt=0, description="weight of desirable examples")
    undesirable_weight: float = Field(1.0, gt=0, description="weight of undesirable examples")
    precompute_ref_log_probs: bool = Field(False, description="score the data with the "
                                           "reference once before training, then free it")


class ORPOMethod(Section):
    """Odds-ratio preference optimisation: SFT loss plus an odds-ratio term, no reference."""

    beta: float = Field(0.1, gt=0, description="weight of the odds-ratio term (lambda in the "
                        "paper)")


class _RLCommon(Section):
    """Settings PPO and GRPO share: where rewards come from and how completions are sampled."""

    reward_functions: list[RewardRef] = Field(default_factory=list, description="Python reward "
                                              "functions: f(prompts, completions, "
                                              "completion_ids, **columns) -> list[float]")
    reward_model: str | None = Field(None, description="a reward model directory (from stage "
                                     "rm) scoring prompt + completion")
    reward_model_weight: float = Field(1.0, description="weight of the reward model's score")
    reward_paths: list[str] = Field(default_factory=list, description="extra directories searched "
                                    "for reward modules (the working directory always is)")
    prompt_template: Literal["chat", "raw"] = Field(
        "chat", description="chat: each prompt is rendered with the run's chat template and a "
        "generation prompt, and a completion ends at the end-of-turn token (an assistant "
        "answer); raw: the prompt is the row's text as it is, which the model continues (no "
        "template: a completion of the text itself, as a base model writes it; it ends at EOS "
        "or max_new_tokens). Raw prompts are one text: no system prompt, no history")
    max_new_tokens: int = Field(64, ge=1, description="tokens generated per completion")
    temperature: float = Field(1.0, gt=0, description="sampling temperature")
    top_k: int = Field(50, ge=0, description="sample among the k likeliest tokens (0: the whole "
                       "vocabulary). 50, transformers' generate default: sampling from the whole "
                       "vocabulary lets a small model's rare tokens through (half-gibberish "
                       "completions that a reward cannot tell apart, and PPO barely learns)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    diagnostic_samples: int = Field(64, ge=0, description="reward-hacking diagnostics at the "
                                    "start, every evaluation and the end: one completion for "
                                    "each of this many held-out prompts (else training prompts) "
                                    "-> distinct-1/2, share of the most frequent opening, mean "
                                    "length, KL to the base (diag_* in the log and metrics.json); "
                                    "0: off")
    collapse_threshold: float = Field(0.2, gt=0, le=1, description="warn when more than this "
                                      "share of the diagnostic samples start with the same four "
                                      "words (a policy repeating a stock phrase)")
    drift_threshold: float | None = Field(0.5, gt=0, description="warn when the diagnostics' KL "
                                          "to the base exceeds this many nats per completion "
                                          "token: varied text the reward likes but the base "
                                          "model finds unlikely (e.g. a word salad of positive "
                                          "words), which distinct-n does not catch; None: off")

    @model_validator(mode="after")
    def _has_reward(self):
        if not self.reward_functions and not self.reward_model:
            raise ValueError("give reward_functions (['module:function', ...]) and/or "
                             "reward_model (a directory from stage rm)")
        return self


class PPOMethod(_RLCommon):
    """Proximal policy optimisation, lmforge's own loop (lmforge.rl): generate, score, train."""

    ppo_epochs: int = Field(4, ge=1, description="optimisation passes over each rollout batch")
    num_generations: int = Field(1, ge=1, description="completions sampled per prompt in each "
                                 "rollout; train.batch_size counts completions and must be a "
                                 "multiple (batch_size / num_generations prompts per iteration)")
    group_baseline: Literal["leave_one_out", "none"] = Field(
        "leave_one_out", description="with num_generations > 1: leave_one_out subtracts from "
        "each completion's score the mean score of the other completions of its prompt (RLOO) "
        "before the advantages are estimated, so the value head only has to learn what that "
        "baseline leaves (the KL part); none: the value head is the only baseline")
    mini_batch_size: int | None = Field(None, ge=1, description="sequences per optimizer step "
                                        "within a rollout (default: train.batch_size)")
    clip_range: float = Field(0.2, gt=0, description="policy ratio clipping epsilon")
    clip_range_value: float = Field(0.2, gt=0, description="value prediction clipping")
    vf_coef: float = Field(0.1, ge=0, description="weight of the value loss")
    gamma: float = Field(1.0, ge=0, le=1, description="discount factor")
    lam: float = Field(1.0, ge=0, le=1, description="GAE lambda. 1 (the default): each token's "
                       "advantage is the return minus the value estimate, unbiased whatever the "
                       "critic knows; with a score at the end of the completion and a value head "
                       "that starts at zero, a lower lambda lets the early tokens see only "
                       "lambda^(T-t) of the score and the rest from the untrained critic (0.95 "
                       "learned +0.28 on the positive-reviews example where 1.0 learned +0.42)")
    kl_coef: float = Field(0.05, ge=0, description="weight of the per-token KL penalty to the "
                           "reference (the base model: the policy with its adapter disabled, "
                           "else a frozen copy), subtracted from the reward (or added to the "
                           "loss: kl_penalty): keeps the policy from drifting into text that "
                           "games the reward; 0: off")
    kl_penalty: Literal["reward", "loss"] = Field(
        "reward", description="where the KL to the reference enters: reward (Ziegler et al.: "
        "-kl_coef * KL_t in each token's reward, so in the returns and the advantages) or loss "
        "(kl_coef * mean KL_t added to the policy loss, as GRPO's beta: the advantages carry "
        "the score alone, without the noise of the sampled KL); loss needs kl_estimator k3 or "
        "k2, whose gradient is the KL's")
    kl_estimator: Literal["k1", "k2", "k3", "abs"] = Field(
        "k1", description="per-token KL estimator: k1 = log-ratio, k2 = half its square, "
        "k3 = (r - 1) - log r")
    target_kl: float | None = Field(None, gt=0, description="adapt kl_coef towards this KL per "
                                    "sequence (adaptive controller); None keeps it fixed")
    kl_horizon: int = Field(10000, ge=1, description="adaptive KL controller horizon")
    whiten_advantages: bool = Field(True, description="normalise advantages over the batch")
    whiten_rewards: bool = Field(False, description="normalise scores over the batch")
    reward_clip: float | None = Field(None, gt=0, description="clip scores to [-c, c]")
    missing_eos_penalty: float | None = Field(None, ge=0, description="subtract this from the "
                                              "score of completions that never end")
    group_equalize: bool = Field(False, description="with num_generations > 1: rescale each "
                                 "prompt's scores (after the baseline) to the same spread, the "
                                 "pooled standard deviation of the batch, so that every prompt "
                                 "weighs the same in the update (GRPO's per-group scaling, at "
                                 "the batch's own scale next to the KL penalty)")
    value_epochs: int = Field(0, ge=0, description="extra passes of the value head alone over "
                              "each rollout's returns before the policy update, on the hidden "
                              "states it read at rollout time (no model pass: nearly free); the "
                              "head, zero at the start, learns the baseline in fewer iterations")
    critic_lr_ratio: float = Field(1.0, gt=0, description="the critic's learning rate (value "
                                   "head, separate backbone) as a multiple of "
                                   "train.learning_rate")
    critic_trains_policy: bool = Field(True, description="with critic value_head: the value "
                                       "loss also trains the policy's weights under the head "
                                       "(a shared trunk); false: the head reads the hidden "
                                       "states detached, so fitting the value never moves the "
                                       "policy (a separate critic never does)")
    critic: Literal["value_head", "separate"] = Field(
        "value_head", description="value_head: a linear head on the policy's hidden states; "
        "separate: its own copy of the base model with a head")

    @model_validator(mode="after")
    def _kl_loss_estimator(self):
        if self.kl_penalty == "loss" and self.kl_estimator not in ("k2", "k3"):
            raise ValueError(f"kl_penalty: loss needs kl_estimator k3 or k2 (the gradient of "
                             f"{self.kl_estimator!r} is not the KL's)")
        return self


class GRPOMethod(_RLCommon):
    """Group relative policy optimisation on trl's GRPOTrainer."""

    num_generations: int = Field(4, ge=2, description="completions per prompt (a group); "
                                 "train.batch_size counts completions and must be a multiple")
    loss: GRPOLoss = Field("dapo", description="trl GRPO loss type")
    beta: float = Field(0.04, ge=0, description="weight of the KL penalty to the reference "
                        "(the base model: the policy with its adapter disabled, else a frozen "
                        "copy): keeps the policy from drifting into text that games the reward. "
                        "0: off, and no reference model is used (cheaper, but nothing holds the "
                        "policy near the base)")
    epsilon: float = Field(0.2, gt=0, description="ratio clipping epsilon")
    num_iterations: int = Field(1, ge=1, description="optimisation passes per generated batch")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="divide advantages by the std of the group, the batch, or not")
    mask_truncated_completions: bool = Field(False, description="leave completions that hit "
                                             "max_new_tokens out of the loss")
    use_vllm: bool = Field(False, description="generate the rollouts with vLLM (trl's colocate "
                           "mode: vLLM shares the training GPU); needs the vllm extra and a CUDA "
                           "GPU, checked when the config is validated")

    @model_validator(mode="after")
    def _vllm_here(self):
        if self.use_vllm:
            from lmforge.infer.vllm_check import HINT, vllm_problem

            problem = vllm_problem()
            if problem:
                raise ValueError(f"use_vllm: {problem}; {HINT}")
        return self


# one block class per stage, from the stage table (config/stages.py)
METHOD_BLOCKS: dict[str, type[Section]] = {name: globals()[spec.method]
                                           for name, spec in STAGE_TABLE.items()}
