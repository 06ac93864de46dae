"""Re-running into an output_dir that already holds a run (issue 18, items 7 and 8).

- ``train.resume: auto`` on a FINISHED run (job scripts always pass it) trains nothing more: the
  same global_step, no extra checkpoint, the same final weights; metrics.json's ``train_loss`` is
  the mean over the whole run and ``resumed_from_step`` says where this process started.
- A run stopped half-way and resumed reports the whole run's ``train_loss`` (the mean over every
  step, both processes), equal to the uninterrupted run's.
- Without ``train.resume`` the run refuses a directory holding checkpoints or a finished model,
  naming both choices; ``train.overwrite: true`` clears the previous run first (no stale
  checkpoints, one TensorBoard event file).
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO, write_jsonl

TOY = str(REPO / "examples/data/toy_train.jsonl")


def _cfg(model_dir, out, data=TOY, **train):
    from lmforge.config import validate

    t = {"output_dir": str(out), "max_steps": 5, "save_steps": 2, "batch_size": 4,
         "logging_steps": 2, "learning_rate": 3e-3, "report_to": ["none"], "num_threads": 1,
         "seed": 3}
    t.update(train)
    return validate({"stage": "sft", "model": {"path": str(model_dir)},
                     "adapter": {"type": "full"},
                     "data": {"train": str(data), "format": "alpaca", "max_length": 48},
                     "train": t})


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def _max_diff(a, b) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _metrics(out) -> dict:
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("how, steps", [
    ({"max_steps": 5}, 5),  # ends mid-epoch
    ({"max_steps": -1, "epochs": 2}, 6),  # 3 steps an epoch: ends at an epoch's end
    ({"max_steps": -1, "epochs": 1.5}, 5),  # ends inside the second epoch
])
def test_resume_auto_on_a_finished_run_trains_nothing_more(tiny_model_dir, tmp_path, how,
                                                           steps):
    from lmforge.stages import run
    from lmforge.training.checkpoints import checkpoint_dirs

    rows = [{"instruction": f"Name colour {i}.", "input": "", "output": "red green blue"[i:]}
            for i in range(12)]
    data = write_jsonl(tmp_path / "train.jsonl", rows) if "epochs" in how else TOY
    out = tmp_path / "run"
    first = run(_cfg(tiny_model_dir, out, data, **how))
    before, loss = _weights(out), first.metrics["train_loss"]
    saved = [p.name for p in checkpoint_dirs(out)]
    assert first.metrics["global_step"] == steps and "resumed_from_step" not in first.metrics
    assert saved[-1] == f"checkpoint-{steps}"
    for _ in range(2):  # every re-run used to add a step
        again = run(_cfg(tiny_model_dir, out, data, resume="auto", **how))
        assert again.metrics["global_step"] == steps
        assert [p.name for p in checkpoint_dirs(out)] == saved
        assert _max_diff(_weights(out), before) == 0.0
        m = _metrics(out)
        assert m["resumed_from_step"] == steps
        assert m["train_loss"] == pytest.approx(loss, abs=1e-9)


def test_resumed_run_reports_the_whole_runs_train_loss(tiny_model_dir, tmp_path):
    from lmforge.stages import run

    straight = run(_cfg(tiny_model_dir, tmp_path / "straight"))
    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(_cfg(tiny_model_dir, out), callbacks=[_Boom(3)])
    resumed = run(_cfg(tiny_model_dir, out, resume="auto"))
    assert resumed.metrics["resumed_from_step"] == 2  # checkpoint-2: the kill came at step 3
    assert resumed.metrics["global_step"] == 5
    assert resumed.metrics["train_loss"] == pytest.approx(straight.metrics["train_loss"],
                                                          abs=1e-6)
    assert _max_diff(_weights(out), _weights(tmp_path / "straight")) <= 1e-6


class _Boom:
    """A crash right after step ``step`` (before any save of that step): the process dies."""

    def __new__(cls, step):
        from transformers import TrainerCallback

        class Boom(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step >= step:
                    raise RuntimeError("simulated crash")

        return Boom()


def test_a_finished_output_dir_is_refused_without_resume_or_overwrite(tiny_model_dir,
                                                                        tmp_path):
    from lmforge.errors import ConfigError
    from lmforge.stages import run

    out = tmp_path / "run"
    run(_cfg(tiny_model_dir, out, max_steps=2, report_to=["tensorboard"]))
    with pytest.raises(ConfigError) as err:
        run(_cfg(tiny_model_dir, out, max_steps=2))
    text = str(err.value) + (err.value.hint or "")
    assert str(out) in text and "train.resume: auto" in text and "train.overwrite: true" in text


def test_overwrite_clears_the_previous_run_first(tiny_model_dir, tmp_path):
    from lmforge.stages import run
    from lmforge.training.checkpoints import checkpoint_dirs

    out = tmp_path / "run"
    run(_cfg(tiny_model_dir, out, max_steps=4, report_to=["tensorboard"]))
    assert [p.name for p in checkpoint_dirs(out)] == ["checkpoint-2", "checkpoint-4"]
    old_events = {p.name for p in (out / "logs").rglob("events.out.tfevents*")}
    assert old_events
    result = run(_cfg(tiny_model_dir, out, max_steps=3, save_steps=3, overwrite=True,
                      report_to=["tensorboard"]))
    assert result.metrics["global_step"] == 3
    assert [p.name for p in checkpoint_dirs(out)] == ["checkpoint-3"]
    events = {p.name for p in (out / "logs").rglob("events.out.tfevents*")}
    assert events and not events & old_events  # one run's curves, never two mixed
    assert not [p for p in out.iterdir() if p.name.startswith(".lmforge-overwritten")]


def test_validate_refuses_a_finished_output_dir(tiny_model_dir, tmp_path, capsys):
    import yaml

    from lmforge import cli

    out = tmp_path / "run"
    (out / "checkpoint-2").mkdir(parents=True)
    cfg = {"stage": "sft", "model": {"path": str(tiny_model_dir)},
           "data": {"train": TOY, "format": "alpaca"}, "train": {"output_dir": str(out)}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert cli.main(["validate", str(path)]) != 0
    assert "train.overwrite: true" in capsys.readouterr().err
    assert cli.main(["validate", str(path), "train.resume=auto"]) == 0
