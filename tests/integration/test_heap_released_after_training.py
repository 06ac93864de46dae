"""When training ends its freed heap is handed back (``release_memory`` in training/trainer.py)
before the final save and the loss plot, so they do not add to a heap the steps no longer use:
the call comes once, after the last step and before loss.png is written."""

from __future__ import annotations


def test_training_hands_back_its_heap_before_saving(tmp_path, monkeypatch):
    from transformers import TrainerCallback

    from lmforge import stages
    from lmforge.utils import cpu_tuning
    from tests.integration.test_adapter_training import sft_config

    seen, state = [], {}

    class Steps(TrainerCallback):
        def on_step_end(self, args, s, control, **kw):
            state["step"] = s.global_step

    real = cpu_tuning.release_memory

    def spy():
        seen.append((state.get("step"), (tmp_path / "run" / "loss.png").exists()))
        return real()

    monkeypatch.setattr(cpu_tuning, "release_memory", spy)
    stages.run(sft_config(tmp_path, "run", {"type": "lora", "r": 4}), callbacks=[Steps()])
    assert seen == [(3, False)]  # once, after the 3rd (last) step, before loss.png
    assert (tmp_path / "run" / "loss.png").is_file()

