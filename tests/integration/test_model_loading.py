"""``model:`` options reach the loaded model: dtype, RoPE scaling, special tokens, quantization,
gradient checkpointing; unsafe or impossible requests are refused with a message naming the
model."""

from __future__ import annotations

import json
import shutil

import pytest

from lmforge.config.model import ModelConfig
from lmforge.errors import ModelError


def _cfg(path, **kw) -> ModelConfig:
    return ModelConfig(path=str(path), **kw)


@pytest.mark.parametrize("kind", ["linear", "dynamic"])
def test_rope_scaling_reaches_config_and_rotary_embedding(kind, tiny_model_dir):
    import torch

    from lmforge.model.loader import load_model

    plain = load_model(_cfg(tiny_model_dir))
    scaled = load_model(_cfg(tiny_model_dir, rope_scaling={"type": kind, "factor": 2.0}))
    rope = scaled.config.rope_parameters
    assert rope["rope_type"] == kind and rope["factor"] == 2.0
    assert rope["rope_theta"] == plain.config.rope_parameters["rope_theta"]
    assert scaled.model.rotary_emb.rope_type == kind
    if kind == "linear":  # position interpolation: every frequency divided by the factor
        torch.testing.assert_close(scaled.model.rotary_emb.inv_freq,
                                   plain.model.rotary_emb.inv_freq / 2.0)
    ids = torch.arange(10, 30)[None]
    with torch.no_grad():
        same = torch.allclose(scaled(ids).logits, plain(ids).logits, atol=1e-6)
    assert same is (kind == "dynamic")  # NTK only kicks in past max_position_embeddings


def test_dtype_attention_and_gradient_checkpointing(tiny_model_dir):
    import torch

    from lmforge.model.loader import load_model

    model = load_model(_cfg(tiny_model_dir, dtype="bfloat16", attn_implementation="eager",
                            gradient_checkpointing=True))
    assert model.dtype == torch.bfloat16
    assert model.config._attn_implementation == "eager"
    assert model.is_gradient_checkpointing and model.config.use_cache is False


def test_flash_attention_refused_clearly_without_gpu(tiny_model_dir):
    import torch

    from lmforge.model.loader import load_model

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present; this checks the CPU refusal")
    with pytest.raises(ModelError, match="flash_attention_2 needs a CUDA GPU"):
        load_model(_cfg(tiny_model_dir, attn_implementation="flash_attention_2"))


def test_new_special_tokens_resize_and_train_embeddings(tiny_model_dir):
    from lmforge.config.adapter import AdapterConfig
    from lmforge.model.adapters import attach
    from lmforge.model.loader import load_model, load_tokenizer

    cfg = _cfg(tiny_model_dir, new_special_tokens=["<tool>", "</tool>"])
    tok = load_tokenizer(cfg)
    assert len(tok) == 1026
    assert tok("a <tool> b")["input_ids"].count(tok.convert_tokens_to_ids("<tool>")) == 1
    model = load_model(cfg, tok)
    assert model.get_input_embeddings().weight.shape[0] == 1026
    assert model.get_output_embeddings().weight.shape[0] == 1026
    peft_model = attach(model, AdapterConfig(type="lora", r=2))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("embed_tokens" in n for n in trainable)
    assert any("lm_head" in n for n in trainable)


def test_trust_remote_code_refusal_names_the_model(tiny_model_dir, tmp_path):
    from lmforge.model.loader import load_model

    d = tmp_path / "custom"
    shutil.copytree(tiny_model_dir, d)
    config = json.loads((d / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}
    (d / "config.json").write_text(json.dumps(config))
    # a model type transformers knows loads with its own code; the shipped code never runs
    assert type(load_model(_cfg(d))).__name__ == "LlamaForCausalLM"
    config["model_type"] = "my_custom_arch"
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError) as err:
        load_model(_cfg(d))
    assert str(d) in err.value.message and "modeling_custom.py" in err.value.message
    assert "trust_remote_code" in err.value.message


def test_pickle_weights_need_allow_pickle(tiny_model_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    from lmforge.model.loader import load_model

    d = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, d)
    torch.save(load_file(str(d / "model.safetensors")), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="pickle"):
        load_model(_cfg(d))
    model = load_model(_cfg(d, allow_pickle=True))
    ref = load_model(_cfg(tiny_model_dir))
    assert torch.equal(model.lm_head.weight, ref.lm_head.weight)


def test_qlora_base_is_quantized_and_counted_in_values(tiny_model_dir):
    from lmforge.config.adapter import AdapterConfig
    from lmforge.model.loader import count_parameters, load_model

    plain = load_model(_cfg(tiny_model_dir))
    for bits, layer in ((4, "Linear4bit"), (8, "Linear8bitLt")):
        model = load_model(_cfg(tiny_model_dir), adapter=AdapterConfig(type="qlora", bits=bits))
        kinds = {type(m).__name__ for m in model.modules()}
        assert layer in kinds
        if bits == 4:
            assert count_parameters(model)[1] == count_parameters(plain)[1]


def test_qlora_attach_reloads_a_float_base(tiny_model_dir):
    """A stage that forgot adapter= still trains QLoRA, not silently plain LoRA."""
    from lmforge.config.adapter import AdapterConfig
    from lmforge.model.adapters import attach
    from lmforge.model.loader import load_model

    model = attach(load_model(_cfg(tiny_model_dir)), AdapterConfig(type="qlora", r=2))
    assert "Linear4bit" in {type(m).__name__ for m in model.modules()}


def test_missing_model_is_a_model_error(tmp_path):
    from lmforge.model.loader import load_model, load_tokenizer

    with pytest.raises(ModelError, match="nope"):
        load_tokenizer(_cfg(tmp_path / "nope"))
    with pytest.raises(ModelError, match="nope"):
        load_model(_cfg(tmp_path / "nope"))
