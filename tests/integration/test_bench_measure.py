"""The benchmark's Recorder on a real Trainer run: every micro-batch counted once, in order,
step boundaries and losses recorded, figures consistent with the data, and the executed FLOPs of
the warm steps from what the probe measured (bench/measure.py, bench/flops.py)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def test_recorder_counts_a_trainer_run(tiny_model_dir, tmp_path):
    import datasets
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq,
                              Trainer, TrainingArguments)

    from bench.measure import Recorder

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lengths = [5, 9, 3, 12, 7, 4, 10, 6, 8, 11, 2, 13]
    rows = [{"input_ids": list(range(10, 10 + n)), "labels": [-100] * (n // 2)
             + list(range(10 + n // 2, 10 + n))} for n in lengths]
    original = Trainer.training_step
    rec = Recorder()
    rec.install()
    try:
        trainer = Trainer(model=model, train_dataset=datasets.Dataset.from_list(rows),
                          args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True,
                                                 per_device_train_batch_size=2,
                                                 gradient_accumulation_steps=2, max_steps=3,
                                                 logging_steps=1, report_to="none",
                                                 save_strategy="no", disable_tqdm=True),
                          data_collator=DataCollatorForSeq2Seq(tok, padding=True,
                                                               label_pad_token_id=-100),
                          callbacks=[rec.callback()])
        trainer.train()
    finally:
        rec.uninstall()
    s = rec.summary(warmup=1)
    assert s["steps"] == 3 and s["micro_batches"] == 6 and len(rec.losses) == 3
    assert [m[2] for m in rec.step_ends] == [2, 4, 6]  # micro-batches at each step end
    used = sum(m["nonpad"] for m in rec.micro)
    trained = sum(m["trained"] for m in rec.micro)
    # 12 examples of 3 steps x 2 micro-batches x 2 rows: each example exactly once
    assert used == sum(lengths)
    assert trained == sum(n - n // 2 - (1 if n // 2 == 0 else 0) for n in lengths)
    assert s["computed_tokens"] >= used and 0 < s["pad_fraction"] < 1
    assert s["warm_steps"] == 2 and s["real_tokens_per_s"] > 0
    assert Trainer.training_step is original  # uninstalled
    # the plain Trainer projects every position onto the vocabulary, computes each layer once
    assert s["precision"] == "fp32" and s["gradient_checkpointing"] is False
    assert s["device"] == "cpu" and s["head_fraction"] == 1.0
    layers = rec.probe.shape.layers
    assert all(m["head"] == m["computed"] and m["layers"] == [m["computed"]] * layers
               for m in rec.micro)
    from bench.flops import executed_flops

    warm = rec.micro[slice(*s["warm_micro"])]
    assert len(warm) == 4  # two warm steps of two micro-batches
    # a full fine-tune: the embeddings are trained, so every layer's input needs a gradient,
    # every weight gets one, and the executed FLOPs are exactly 6 x the matrix weights per position
    assert rec.probe.input_grad == [True] * layers
    shape = rec.probe.shape
    n = sum(x.d_in * x.d_out for x in shape.linears) + shape.hidden * shape.vocab
    want = sum(6 * n * m["computed"] for m in warm)
    assert want == sum(executed_flops(shape, m["computed"], m["computed"], (True,) * layers)
                       ["total"] for m in warm)
    assert s["executed_flops"]["total"] == want and s["executed_flops"]["recompute"] == 0
    assert s["executed_flops_per_s"] == pytest.approx(want / s["warm_seconds"])
