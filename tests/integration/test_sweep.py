"""``lmforge sweep`` on a toy task: 4 trials over two learning rates (x two seeds, grid), killed
with SIGKILL in the middle of its third trial, then run again: it resumes the SQLite study,
continues the interrupted trial from its checkpoint, and ends with exactly 4 counted trials
covering the 4 grid points once each; the best trial has the learning rate that learns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO, run_cli, write_jsonl

GOOD_LR, BAD_LR = 3e-3, 1e-6
KILLER = textwrap.dedent("""
    import os, signal, sys
    from transformers import TrainerCallback
    import lmforge.stages as S

    class Kill(TrainerCallback):  # SIGKILL (no clean-up at all) in trial 2, after a checkpoint
        def on_step_end(self, args, state, control, **kw):
            if args.output_dir.endswith("trial_2") and state.global_step == 4:
                os.kill(os.getpid(), signal.SIGKILL)

    plain = S.run
    S.run = lambda cfg, *, callbacks=(): plain(cfg, callbacks=[*callbacks, Kill()])
    from lmforge.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.fixture(scope="module")
def sweep_files(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    rows = [{"instruction": f"Colour of fruit {i}?", "input": "",
             "output": ["red", "yellow", "green"][i % 3]} for i in range(24)]
    data = write_jsonl(root / "train.jsonl", rows)
    config = root / "sweep.yaml"
    config.write_text(textwrap.dedent(f"""
        stage: sft
        model: {{path: "{tiny_model_dir}"}}
        data: {{train: "{data}", eval: 0.25, format: alpaca, max_length: 48}}
        train: {{output_dir: "{root / 'sweep'}", max_steps: 6, batch_size: 6, save_steps: 3,
                 eval_steps: 3, logging_steps: 3, num_threads: 1, report_to: [none]}}
    """))
    space = root / "space.yaml"
    space.write_text(f"train.learning_rate: {{choice: [{GOOD_LR}, {BAD_LR}]}}\n"
                     "train.seed: {choice: [1, 2]}\n")
    return config, space, root / "sweep"


def trials(directory) -> list:
    import optuna

    study = optuna.load_study(study_name="lmforge-sweep",
                              storage=f"sqlite:///{directory / 'study.db'}")
    return study.get_trials(deepcopy=False)


def test_sweep_resumes_after_kill_and_finds_the_better_lr(sweep_files):
    config, space, directory = sweep_files
    args = ["sweep", str(config), "--space", str(space), "--trials", "4", "--sampler", "grid",
            "--pruner", "none"]
    killed = subprocess.run([sys.executable, "-c", KILLER, *args], cwd=REPO, timeout=300,
                            capture_output=True, text=True, env=dict(os.environ))
    assert killed.returncode == -9, killed.stderr[-3000:]
    before = {t.number: t.state.name for t in trials(directory)}
    assert before == {0: "COMPLETE", 1: "COMPLETE", 2: "RUNNING"}
    assert (directory / "trial_2" / "checkpoint-3").is_dir()
    stamps = {n: (directory / f"trial_{n}" / "metrics.json").stat().st_mtime_ns for n in (0, 1)}

    proc = run_cli(*args, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    after = trials(directory)
    counted = [t for t in after if t.state.name == "COMPLETE"]
    assert len(counted) == 4 and [t.state.name for t in after].count("FAIL") == 1
    # every grid point exactly once: the interrupted trial was continued, not duplicated
    points = {(t.params["train.learning_rate"], t.params["train.seed"]) for t in counted}
    assert len(points) == 4
    resumed = [t for t in counted if t.user_attrs.get("resumed_from") == 2]
    assert len(resumed) == 1
    out = directory / f"trial_{resumed[0].number}"
    assert (out / "checkpoint-3").is_dir() and not (directory / "trial_2").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    fresh = json.loads((directory / "trial_0" / "metrics.json").read_text())
    assert metrics["global_step"] == fresh["global_step"] == 6
    # continued from checkpoint-3: only steps 4..6 were trained in the second process
    assert 0 < metrics["train_tokens"] < fresh["train_tokens"]
    # trials finished before the kill were not run again
    for n, stamp in stamps.items():
        assert (directory / f"trial_{n}" / "metrics.json").stat().st_mtime_ns == stamp
    summary = json.loads((directory / "sweep_summary.json").read_text())
    assert summary["best"]["params"]["train.learning_rate"] == GOOD_LR
    best_value = min(t.value for t in counted)
    assert summary["best"]["value"] == pytest.approx(best_value)
    assert (directory / "sweep.png").stat().st_size > 1000
    assert "learning_rate: 0.003" in (directory / "best_config.yaml").read_text()
    assert "sweep: eval_loss" in proc.stdout  # the summary table


def test_a_directory_holding_another_sweep_is_refused(sweep_files):
    from lmforge.errors import ConfigError
    from lmforge.sweep.space import parse_space
    from lmforge.sweep.study import open_study

    _, _, directory = sweep_files
    if not (directory / "study.db").is_file():
        pytest.skip("needs the sweep of the previous test")
    raw = {"train.learning_rate": {"log_uniform": [1e-5, 1e-3]}}
    identity = {"space": raw, "metric": "eval_loss", "direction": "minimize"}
    with pytest.raises(ConfigError, match="holds another sweep.*space"):
        open_study(directory, identity, "minimize", "tpe", 0, parse_space(raw))
