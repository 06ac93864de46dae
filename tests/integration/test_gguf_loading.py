"""GGUF models load, convert once to a cached safetensors directory, and train.

The test writes a real GGUF file of the tiny Llama with the ``gguf`` package (F32 tensors, the
byte-level BPE vocabulary with its merges, special-token ids and chat template; q/k rows permuted
the way llama.cpp stores them, which transformers' GGUF loader undoes), so loading it must give
back exactly the tiny model and its tokenizer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

_NAMES = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
          "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
          "self_attn.o_proj": "attn_output",
          "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate",
          "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def _gguf_name(hf: str) -> str:
    top = {"model.embed_tokens.weight": "token_embd.weight",
           "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    if hf in top:
        return top[hf]
    _, _, i, rest = hf.split(".", 3)
    module = rest.rsplit(".", 1)[0]
    return f"blk.{i}.{_NAMES[module]}.weight"


def _permute(w, n_head):
    """llama.cpp's q/k row order (transformers' GGUF loader undoes it)."""
    rows = w.shape[0] // n_head // 2
    return w.reshape(n_head, 2, rows, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(model_dir: Path, out: Path) -> Path:
    """Write the tiny Llama in ``model_dir`` as an F32 GGUF file (what llama.cpp's converter
    writes for it: llama metadata, gpt2-style BPE tokenizer, permuted q/k)."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    cfg = json.loads((model_dir / "config.json").read_text())
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    tcfg = json.loads((model_dir / "tokenizer_config.json").read_text())
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name("lmforge tiny llama")
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_dimension_count(cfg["head_dim"])
    w.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    vocab = dict(tok["model"]["vocab"])
    specials = {t["content"]: t["id"] for t in tok["added_tokens"]}
    vocab.update(specials)
    by_id = {i: t for t, i in vocab.items()}
    tokens = [by_id.get(i, f"[UNUSED{i}]") for i in range(cfg["vocab_size"])]
    types = [gguf.TokenType.CONTROL if t in specials else
             (gguf.TokenType.NORMAL if i in by_id else gguf.TokenType.UNUSED)
             for i, t in enumerate(tokens)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_pad_token_id(cfg["pad_token_id"])
    w.add_add_bos_token(False)
    w.add_chat_template((model_dir / "chat_template.jinja").read_text())
    weights = load_file(str(model_dir / "model.safetensors"))
    for name, arr in sorted(weights.items()):
        arr = arr.astype(np.float32)
        if name.endswith("q_proj.weight"):
            arr = _permute(arr, cfg["num_attention_heads"])
        elif name.endswith("k_proj.weight"):
            arr = _permute(arr, cfg["num_key_value_heads"])
        w.add_tensor(_gguf_name(name), arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


@pytest.fixture(scope="module")
def tiny_gguf(tiny_model_dir, tmp_path_factory) -> Path:
    return write_tiny_gguf(tiny_model_dir, tmp_path_factory.mktemp("gguf") / "tiny-f32.gguf")


def _logits(model, ids):
    import torch

    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("spelling", ["file", "dir+gguf_file"])
def test_gguf_loads_as_the_original_model(spelling, tiny_gguf, tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmforge.config.model import ModelConfig
    from lmforge.model.loader import load_model, load_tokenizer, model_dir

    if spelling == "file":
        cfg = ModelConfig(path=str(tiny_gguf), cache_dir=str(tmp_path / "conv"))
    else:
        cfg = ModelConfig(path=str(tiny_gguf.parent), gguf_file=tiny_gguf.name,
                          cache_dir=str(tmp_path / "conv"))
    tok = load_tokenizer(cfg)
    model = load_model(cfg, tok)
    ref_tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ref = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    text = "Hello world, the movie was great! 你好 😀 <|im_start|>user\nhi<|im_end|>"
    assert tok(text)["input_ids"] == ref_tok(text)["input_ids"]
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}]
    assert tok.apply_chat_template(msgs, tokenize=False) == ref_tok.apply_chat_template(
        msgs, tokenize=False)
    assert (tok.eos_token, tok.pad_token, tok.bos_token) == (
        ref_tok.eos_token, ref_tok.pad_token, ref_tok.bos_token)
    ids = torch.tensor([ref_tok(text)["input_ids"]])
    torch.testing.assert_close(_logits(model, ids), _logits(ref, ids), atol=1e-6, rtol=0)
    # converted once into a plain safetensors directory that is reused
    conv = Path(model_dir(cfg))
    assert conv.parent == tmp_path / "conv"
    assert (conv / "model.safetensors").is_file() and not list(conv.glob("*.bin"))
    assert "quantization_config" not in json.loads((conv / "config.json").read_text())
    marker = conv / "lmforge_gguf_source.json"
    stamp = marker.stat().st_mtime_ns
    assert Path(model_dir(cfg)) == conv and marker.stat().st_mtime_ns == stamp


def test_gguf_model_trains_with_lora(tiny_gguf, tmp_path, monkeypatch):
    from tests.integration.test_adapter_training import sft_config, train_with_snapshot

    cfg = sft_config(tmp_path, "gguf-run", {"type": "lora", "r": 4},
                     model={"path": str(tiny_gguf), "cache_dir": str(tmp_path / "conv")})
    result, snap = train_with_snapshot(cfg)
    assert all(not (snap.begin[n] == snap.end[n]).all() for n in snap.trainable)
    assert (result.output_dir / "adapter_model.safetensors").is_file()
    assert math.isfinite(result.metrics["train_loss"])


def test_info_reads_the_gguf_header(tiny_gguf, tiny_model_dir):
    from lmforge.export.inspect import model_info

    info = model_info(str(tiny_gguf))
    base = model_info(str(tiny_model_dir))
    assert info["format"] == "gguf" and info["architecture"] == "llama"
    assert info["file_type"] == "ALL_F32" and info["tensor_types"] == {"F32": 21}
    for key in ("layers", "hidden_size", "attention_heads", "kv_heads", "vocab_size",
                "parameters"):
        assert info[key] == base[key], key
    assert info["chat_template"] is True


def test_missing_gguf_file_is_clear(tmp_path):
    from lmforge.config.model import ModelConfig
    from lmforge.errors import ModelError
    from lmforge.model.loader import model_dir

    with pytest.raises(ModelError, match="GGUF file not found"):
        model_dir(ModelConfig(path=str(tmp_path), gguf_file="absent.gguf"))
