"""The 1-process launcher environment a DeepSpeed run without a launcher gets (issue 18, item 13;
distributed/ranks.py): set for the body on a free loopback port, restored afterwards, untouched
under a real launcher or without DeepSpeed."""

from __future__ import annotations

import os
import socket

import pytest

from lmforge.distributed.ranks import RENDEZVOUS_ENV, single_process_rendezvous


@pytest.fixture
def no_launcher(monkeypatch):
    for name in (*RENDEZVOUS_ENV, "ACCELERATE_USE_DEEPSPEED"):
        monkeypatch.delenv(name, raising=False)


def test_one_process_rendezvous_set_and_restored(no_launcher):
    with single_process_rendezvous(True):
        env = {name: os.environ.get(name) for name in RENDEZVOUS_ENV}
        os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"  # what accelerate leaves behind
    assert env["RANK"] == env["LOCAL_RANK"] == "0" and env["WORLD_SIZE"] == "1"
    assert env["MASTER_ADDR"] == "127.0.0.1"
    with socket.socket() as sock:  # the port was free (nothing listens on it now)
        sock.bind(("127.0.0.1", int(env["MASTER_PORT"])))
    assert all(name not in os.environ for name in (*RENDEZVOUS_ENV, "ACCELERATE_USE_DEEPSPEED"))


def test_user_address_kept_and_launchers_left_alone(no_launcher, monkeypatch):
    monkeypatch.setenv("MASTER_PORT", "29555")
    with single_process_rendezvous(True):
        assert os.environ["MASTER_PORT"] == "29555" and os.environ["WORLD_SIZE"] == "1"
    assert os.environ["MASTER_PORT"] == "29555" and "WORLD_SIZE" not in os.environ
    with single_process_rendezvous(False):  # no DeepSpeed: nothing to do
        assert "WORLD_SIZE" not in os.environ
    monkeypatch.setenv("WORLD_SIZE", "2")  # under torchrun: its environment is the truth
    monkeypatch.setenv("RANK", "1")
    with single_process_rendezvous(True):
        assert os.environ["RANK"] == "1" and "LOCAL_RANK" not in os.environ
