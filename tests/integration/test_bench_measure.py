"""The benchmark's Recorder on a real Trainer run: every micro-batch counted once, in order,
step boundaries and losses recorded, figures consistent with the data (bench/measure.py)."""

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
