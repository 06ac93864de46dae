"""Checkpoint manifests, complete-checkpoint discovery and retention (training/checkpoints.py),
on plain directories: no model, no Trainer."""

from __future__ import annotations

import json

import pytest


def _ckpt(out, step: int, complete: bool = True, payload: bytes = b"weights"):
    from lmforge.training.checkpoints import write_manifest

    path = out / f"checkpoint-{step}"
    (path / "sub").mkdir(parents=True)
    (path / "model.safetensors").write_bytes(payload * step)
    (path / "sub" / "state.json").write_text(json.dumps({"step": step}))
    if complete:
        write_manifest(path, step, sync=False)
    return path


def test_manifest_lists_every_file_with_size_and_sha256(tmp_path):
    import hashlib

    from lmforge.training.checkpoints import MANIFEST, verify

    path = _ckpt(tmp_path, 3)
    data = json.loads((path / MANIFEST).read_text())
    assert data["step"] == 3 and set(data["files"]) == {"model.safetensors", "sub/state.json"}
    info = data["files"]["model.safetensors"]
    assert info["size"] == len(b"weights" * 3)
    assert info["sha256"] == hashlib.sha256(b"weights" * 3).hexdigest()
    assert verify(path) is None


@pytest.mark.parametrize("damage, reason", [
    (lambda p: (p / "sub" / "state.json").unlink(), "missing"),
    (lambda p: (p / "model.safetensors").write_bytes(b"short"), "bytes"),
    (lambda p: (p / "model.safetensors").write_bytes(b"WEIGHTS" * 2), "sha256"),
    (lambda p: (p / "lmforge_manifest.json").write_text("{not json"), "unreadable"),
    (lambda p: (p / "lmforge_manifest.json").unlink(), "no manifest"),
])
def test_verify_names_what_is_wrong(tmp_path, damage, reason):
    from lmforge.training.checkpoints import verify

    path = _ckpt(tmp_path, 2)
    damage(path)
    assert reason in verify(path)


def test_latest_complete_skips_partial_and_corrupt_checkpoints(tmp_path, caplog):
    from lmforge.training.checkpoints import complete_checkpoints, latest_complete

    assert latest_complete(tmp_path / "nothing") is None
    _ckpt(tmp_path, 2)
    good = _ckpt(tmp_path, 4)
    _ckpt(tmp_path, 6, complete=False)  # killed before its manifest
    bad = _ckpt(tmp_path, 8)
    (bad / "model.safetensors").write_bytes(b"x" * len(b"weights" * 8))  # same size, other bytes
    (tmp_path / "checkpoint-junk").mkdir()
    assert latest_complete(tmp_path) == str(good)
    assert "checkpoint-8" in caplog.text and "checkpoint-6" in caplog.text
    # the cheap check (sizes) sees 8 as complete; the deep one (resume) does not
    assert [p.name for p in complete_checkpoints(tmp_path)] == [
        "checkpoint-2", "checkpoint-4", "checkpoint-8"]


def test_rotation_keeps_the_newest_and_the_best_and_leaves_partial_ones(tmp_path):
    from lmforge.training.checkpoints import checkpoint_dirs, rotate

    for step in (1, 2, 3, 4, 5):
        _ckpt(tmp_path, step)
    _ckpt(tmp_path, 6, complete=False)
    deleted = rotate(tmp_path, 2, protect=[str(tmp_path / "checkpoint-1")])
    assert [p.name for p in deleted] == ["checkpoint-2", "checkpoint-3", "checkpoint-4"]
    # best (1) + newest complete (5) kept; the partial 6 is neither counted nor deleted
    assert [p.name for p in checkpoint_dirs(tmp_path)] == [
        "checkpoint-1", "checkpoint-5", "checkpoint-6"]
    assert rotate(tmp_path, 1, protect=[str(tmp_path / "checkpoint-1")]) == []  # both needed
    assert [p.name for p in rotate(tmp_path, 1)] == ["checkpoint-1"]


def test_publish_replaces_an_existing_checkpoint_of_the_same_step(tmp_path):
    from lmforge.training.checkpoints import publish, verify, write_manifest

    old = _ckpt(tmp_path, 5)
    staging = tmp_path / ".partial-checkpoint-5" / "checkpoint-5"
    staging.mkdir(parents=True)
    (staging / "model.safetensors").write_bytes(b"new")
    write_manifest(staging, 5, sync=False)
    publish(staging, old)
    assert (old / "model.safetensors").read_bytes() == b"new" and verify(old) is None
    assert not (tmp_path / ".partial-old-checkpoint-5").exists()


def test_explicit_resume_path_is_checked_against_its_manifest(tmp_path):
    from lmforge.errors import ConfigError
    from lmforge.training.checkpoints import check_resume_path

    path = _ckpt(tmp_path, 2)
    check_resume_path(path)
    (path / "model.safetensors").write_bytes(b"X" * len(b"weights" * 2))
    with pytest.raises(ConfigError, match="incomplete or corrupt.*sha256"):
        check_resume_path(path)


def test_training_args_become_json_without_secrets(tmp_path):
    from transformers import TrainingArguments

    from lmforge.training.checkpoints import args_to_json

    (tmp_path / "training_args.bin").write_bytes(b"pickle")
    args = TrainingArguments(output_dir=str(tmp_path), hub_token="hf_" + "a" * 34,
                             report_to="none", use_cpu=True)
    args_to_json(tmp_path, args)
    assert not (tmp_path / "training_args.bin").exists()
    text = (tmp_path / "training_args.json").read_text()
    assert json.loads(text)["output_dir"] == str(tmp_path) and "hf_aaaa" not in text
