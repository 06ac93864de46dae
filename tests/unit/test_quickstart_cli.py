"""The quickstart's command-line defaults are the recipe documented in getting-started: LoRA in the
last 10 layers, no default system turn in training, the tuned row scored by the labels, 4 sentences
per article, 160 steps in length-grouped batches, bf16 where the machine has it."""

from __future__ import annotations

import argparse

from lmforge.commands import quickstart


def _args(*argv: str):
    parser = argparse.ArgumentParser()
    quickstart.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_are_the_documented_recipe():
    args = _args()
    assert (args.max_steps, args.lr, args.eval_mode, args.drop_system, args.lora_layers) == \
        (160, 1e-3, "choices", True, 10)
    assert (args.sentences, args.precision, args.group_by_length) == (4, "auto", True)


def test_each_option_can_be_turned_back():
    args = _args("--keep-system", "--lora-layers", "0", "--eval-mode", "generate",
                 "--no-group-by-length", "--precision", "fp32")
    assert (args.drop_system, args.lora_layers, args.eval_mode) == (False, 0, "generate")
    assert (args.group_by_length, args.precision) == (False, "fp32")
    assert _args("--drop-system").drop_system is True  # the old flag still parses


def test_run_config_follows_the_settings(tmp_path):
    from lmforge.quickstart.run import QuickstartSettings, run_config

    cfg = run_config(QuickstartSettings(output=tmp_path), tmp_path / "t", tmp_path / "e")
    assert cfg["adapter"]["layers_to_transform"] == -10
    assert cfg["data"]["template_system"] == "drop"
    assert cfg["eval"]["mode"] == "choices"
    assert cfg["train"]["group_by_length"] is True
    every = run_config(QuickstartSettings(output=tmp_path, lora_layers=None, drop_system=False,
                                          eval_mode="generate", group_by_length=False),
                      tmp_path / "t", tmp_path / "e")
    assert "layers_to_transform" not in every["adapter"]
    assert every["data"]["template_system"] == "keep" and "mode" not in every["eval"]
    assert every["train"]["group_by_length"] is False
