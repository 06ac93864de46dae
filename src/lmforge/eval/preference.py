"""Held-out evaluation of a preference run (``lmforge eval`` on an rm/dpo/kto/orpo run).

The pairs are the run's own eval split (``data.eval``: files or a fraction of the training data,
split as in training), rendered with the run's template and fitted to ``data.max_length`` as in
training; ``--data-file`` gives other data in the run's ``data.format``.

- rm: the reward is the reward model's score of prompt + answer.
- dpo/kto/orpo: the implicit reward ``beta * (log p_policy(answer | prompt) - log p_ref(answer |
  prompt))`` (summed over the answer's tokens), where the reference is the base the run started
  from (``dpo.reference_model`` when the run set one; for an adapter run the policy with its
  adapter disabled, which is that base).

Pairs give ``reward_accuracy`` (chosen scored above rejected) and ``reward_margin`` (mean chosen −
rejected); unpaired KTO rows give the accuracy of the reward's sign against the label and the margin
between the mean desirable and undesirable rewards.
"""

from __future__ import annotations

import logging
from statistics import fmean

from lmforge.errors import ConfigError

log = logging.getLogger(__name__)


def _data_cfg(cfg, data_file: str | None):
    """The run config whose first split to read: the eval split, or --data-file as 'train'."""
    from lmforge.config.loader import validate

    tree = cfg.model_dump(mode="json")
    if data_file:
        tree["data"].update(train=data_file, eval=None)
        return validate(tree), "train"
    if cfg.data.eval is None:
        raise ConfigError(f"the {cfg.stage} run has no eval split (data.eval)",
                          "pass --data-file FILE (rows in the run's data.format), or train "
                          "with data.eval set")
    return cfg, "eval"


def records(cfg, tokenizer, template: str, data_file: str | None, max_samples: int | None):
    from lmforge.data.preference_data import load_records

    run_cfg, split = _data_cfg(cfg, data_file)
    kind = "unpaired" if run_cfg.data.format == "kto" else "pair"
    train, evals, _ = load_records(run_cfg, tokenizer, template, kind)
    rows = train if split == "train" else evals
    if not rows:
        raise ConfigError("no held-out example fits in data.max_length")
    return rows[:max_samples] if max_samples else rows


def _encode(prompt: str, answer: str, tokenizer) -> tuple[list[int], int]:
    """(ids of [auto special tokens +] prompt + answer, index of the first answer token)."""
    lead = list(tokenizer("")["input_ids"])  # e.g. a BOS the tokenizer adds (trl keeps it)
    enc = tokenizer(prompt + answer, add_special_tokens=False, return_offsets_mapping=True)
    start = next((i for i, (s, _) in enumerate(enc["offset_mapping"]) if s >= len(prompt)),
                 len(enc["input_ids"]))
    return lead + list(enc["input_ids"]), len(lead) + start


def _batches(seqs: list, size: int, pad_id: int, device):
    import torch

    for lo in range(0, len(seqs), size):
        chunk = seqs[lo:lo + size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (seq, _) in enumerate(chunk):
            ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        yield chunk, ids.to(device), mask.to(device)


def answer_logps(model, seqs: list[tuple[list[int], int]], batch_size: int, pad_id: int):
    """Sum of log-probabilities of each sequence's answer tokens (from its start index)."""
    import torch

    device = next(model.parameters()).device
    out: list[float] = []
    with torch.no_grad():
        for chunk, ids, mask in _batches(seqs, batch_size, pad_id, device):
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            lp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            for row, (seq, start) in enumerate(chunk):
                out.append(float(lp[row, max(start, 1) - 1:len(seq) - 1].sum()))
    return out


def scores(model, seqs: list[tuple[list[int], int]], batch_size: int, pad_id: int):
    """A reward model's score of each whole sequence (read at its last real token)."""
    import torch

    device = next(model.parameters()).device
    out: list[float] = []
    with torch.no_grad():
        for _, ids, mask in _batches(seqs, batch_size, pad_id, device):
            out += model(input_ids=ids, attention_mask=mask).logits[:, 0].float().tolist()
    return out


def summarize(rows: list, rewards: list[float], stage: str, reward: str) -> dict:
    """Metrics and per-example records from the rewards of each row's answers, in order
    (pairs: chosen, rejected; unpaired: one each)."""
    paired = hasattr(rows[0], "chosen")
    recs: list[dict] = []
    if paired:
        chosen, rejected = rewards[0::2], rewards[1::2]
        margins = [c - r for c, r in zip(chosen, rejected)]
        for i, (row, c, r) in enumerate(zip(rows, chosen, rejected)):
            recs.append({"index": i, "where": row.where, "chosen_reward": c,
                         "rejected_reward": r, "margin": c - r})
        metrics = {"reward_accuracy": fmean(m > 0 for m in margins),
                   "reward_margin": fmean(margins), "chosen_reward": fmean(chosen),
                   "rejected_reward": fmean(rejected)}
    else:
        good = [x for row, x in zip(rows, rewards) if row.label]
        bad = [x for row, x in zip(rows, rewards) if not row.label]
        for i, (row, x) in enumerate(zip(rows, rewards)):
            recs.append({"index": i, "where": row.where, "label": row.label, "reward": x})
        metrics = {"reward_accuracy": fmean((x > 0) == row.label
                                            for row, x in zip(rows, rewards))}
        if good and bad:
            metrics["reward_margin"] = fmean(good) - fmean(bad)
        metrics.update({k: fmean(v) for k, v in (("desirable_reward", good),
                                                 ("undesirable_reward", bad)) if v})
    return {"stage": stage, "reward": reward, "unit": "pairs" if paired else "examples",
            "examples": len(rows), **metrics, "records": recs}


def _sequences(rows: list, tokenizer) -> list[tuple[list[int], int]]:
    seqs = []
    for row in rows:
        answers = [row.chosen, row.rejected] if hasattr(row, "chosen") else [row.completion]
        seqs += [_encode(row.prompt, a, tokenizer) for a in answers]
    return seqs


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
        tokenizer.eos_token_id


def evaluate_run(path: str, cfg, data_file: str | None = None, max_samples: int | None = None,
                 batch_size: int = 8, adapter: str | None = None) -> dict:
    if cfg.stage == "rm":
        return _reward_model(path, cfg, data_file, max_samples, batch_size)
    return _implicit(path, cfg, data_file, max_samples, batch_size, adapter)


def _reward_model(path: str, cfg, data_file, max_samples, batch_size) -> dict:
    from pathlib import Path

    from transformers import AutoModelForSequenceClassification

    from lmforge.data.templates import resolve_template
    from lmforge.model.loader import load_model, load_tokenizer
    from lmforge.training.device import inference_device

    if not (Path(path) / "config.json").is_file():
        raise ConfigError(f"{path} holds no reward model (config.json missing)",
                          "evaluate the run's output_dir after training")
    mcfg = cfg.model.model_copy(update={"path": str(path), "rope_scaling": None,
                                        "gguf_file": None, "new_special_tokens": [],
                                        "gradient_checkpointing": False})
    tokenizer = load_tokenizer(mcfg)
    template = resolve_template(cfg.model.template, tokenizer, cfg.data.template_system)
    rows = records(cfg, tokenizer, template, data_file, max_samples)
    model = load_model(mcfg, tokenizer, auto_class=AutoModelForSequenceClassification,
                       num_labels=1).eval().to(inference_device())
    rewards = scores(model, _sequences(rows, tokenizer), batch_size, _pad_id(tokenizer))
    return summarize(rows, rewards, "rm", "the reward model's score")


def _reference(cfg, tokenizer):
    from lmforge.model.loader import load_model
    from lmforge.training.device import inference_device

    ref_path = getattr(cfg.method(), "reference_model", None)
    rcfg = cfg.model.model_copy(update={"path": ref_path} if ref_path else {})
    rcfg = rcfg.model_copy(update={"gradient_checkpointing": False})
    log.info("reference: %s", rcfg.path)
    return load_model(rcfg, tokenizer).eval().to(inference_device())


def _implicit(path: str, cfg, data_file, max_samples, batch_size, adapter) -> dict:
    import gc

    from lmforge.infer.loading import load
    from lmforge.rl.state import is_peft

    loaded = load(path, adapter=adapter)
    policy, tokenizer = loaded.model, loaded.tokenizer
    rows = records(cfg, tokenizer, loaded.template, data_file, max_samples)
    seqs, pad = _sequences(rows, tokenizer), _pad_id(tokenizer)
    pol = answer_logps(policy, seqs, batch_size, pad)
    if is_peft(policy) and not getattr(cfg.method(), "reference_model", None) \
            and cfg.adapter.path is None:
        with policy.disable_adapter():  # a new adapter disabled is exactly the base
            ref = answer_logps(policy, seqs, batch_size, pad)
    else:
        del policy, loaded
        gc.collect()
        ref = answer_logps(_reference(cfg, tokenizer), seqs, batch_size, pad)
    beta = cfg.method().beta
    rewards = [beta * (p - r) for p, r in zip(pol, ref)]
    return summarize(rows, rewards, cfg.stage,
                     f"{beta:g} × (log p_policy − log p_reference), reference {cfg.model.path}")
