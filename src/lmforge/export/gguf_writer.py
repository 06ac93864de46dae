"""The weights half of a GGUF file: hyperparameters, tensor names, tensor types.

Written with the ``gguf`` package (the one llama.cpp's converter uses): ``GGUFWriter`` for the file,
``get_tensor_name_map`` for llama.cpp's tensor names (``blk.N.attn_q.weight`` ...) and
``gguf.quants.quantize`` for the quantized types. As llama.cpp's converter does for the ``llama``
architecture, the rows of the q/k projections are permuted (llama.cpp's RoPE rotates adjacent pairs,
transformers' rotates halves); transformers' GGUF reader undoes exactly that permutation.

Types: norms and biases (1-D) stay F32, as in llama.cpp. ``q8_0`` quantizes every 2-D weight to
Q8_0. The 4/5-bit types (``q4_0``, ``q4_1``, ``q5_0``, ``q5_1``) keep the output projection (or the
tied embedding that serves as it) at Q8_0 (llama.cpp's quantizer also keeps it wider). A weight
whose rows do not split into whole blocks of 32 is written F16. The k-quants (``q4_k_m`` ...) are
not implemented by the ``gguf`` package's Python quantizer, so they are refused with a pointer to
llama.cpp's ``llama-quantize``, which turns the f16 export into any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmforge.errors import LmforgeError

# HF architecture class -> (llama.cpp architecture, q/k permuted)
ARCHITECTURES = {"LlamaForCausalLM": ("llama", True), "MistralForCausalLM": ("llama", True),
                 "Qwen2ForCausalLM": ("qwen2", False)}
# --gguf-type -> (GGML type of 2-D weights, llama.cpp file type name)
TYPES = {"f32": ("F32", "ALL_F32"), "f16": ("F16", "MOSTLY_F16"), "bf16": ("BF16", "MOSTLY_BF16"),
         "q8_0": ("Q8_0", "MOSTLY_Q8_0"), "q5_1": ("Q5_1", "MOSTLY_Q5_1"),
         "q5_0": ("Q5_0", "MOSTLY_Q5_0"), "q4_1": ("Q4_1", "MOSTLY_Q4_1"),
         "q4_0": ("Q4_0", "MOSTLY_Q4_0")}
K_QUANTS = ("q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k")


class GGUFExportError(LmforgeError):
    exit_code = 2
    default_hint = "see `lmforge export --help`"


@dataclass
class Arch:
    name: str  # llama.cpp architecture
    permute_qk: bool
    hf_class: str


def check_type(name: str) -> str:
    name = name.lower()
    if name in TYPES:
        return name
    if name in K_QUANTS:
        from importlib.metadata import version

        raise GGUFExportError(
            f"--gguf-type {name}: the gguf package ({version('gguf')}) cannot quantize to "
            "k-quants in Python",
            f"choose one of {', '.join(TYPES)} (q4_0 is the smallest), or export f16 and "
            f"convert it with llama.cpp: llama-quantize model.gguf model-{name}.gguf "
            f"{name.upper()}")
    raise GGUFExportError(f"--gguf-type {name}: unknown type", f"choose one of "
                          f"{', '.join(TYPES)}")


def check_arch(config) -> Arch:
    classes = list(getattr(config, "architectures", None) or [])
    for cls in classes:
        if cls in ARCHITECTURES:
            return Arch(*ARCHITECTURES[cls], cls)
    supported = sorted({c.removesuffix("ForCausalLM").lower() for c in ARCHITECTURES})
    raise GGUFExportError(f"GGUF export: architecture {classes or config.model_type} is not "
                          f"supported (supported: {', '.join(supported)})",
                          "export a transformers model instead (--merge), or convert it with "
                          "llama.cpp's convert_hf_to_gguf.py")


def _rope(writer, config) -> None:
    params = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling",
                                                                       None) or {})
    theta = params.get("rope_theta", getattr(config, "rope_theta", None))
    if theta is not None:
        writer.add_rope_freq_base(float(theta))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind in (None, "default"):
        return
    if kind == "linear":
        import gguf

        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(params["factor"]))
        return
    raise GGUFExportError(f"GGUF export: RoPE scaling '{kind}' is not supported (default and "
                          "linear are)", "convert it with llama.cpp's convert_hf_to_gguf.py")


def write_hparams(writer, config, arch: Arch) -> None:
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    if arch.name == "llama":
        writer.add_rope_dimension_count(head_dim)
    if head_dim * heads != config.hidden_size:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    _rope(writer, config)


def permute(w, n_head: int):
    """llama.cpp's q/k row order: per head, the two rotary halves interleaved."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(
        w.shape)


def _encode(arr, ggml: str, is_output: bool):
    """(data, raw_dtype) for one tensor; raw_dtype None lets the writer infer F32/F16."""
    import gguf
    import numpy as np

    from gguf.quants import quantize

    if arr.ndim < 2 or ggml == "F32":
        return arr.astype(np.float32), None
    if ggml.startswith(("Q4", "Q5")) and is_output:
        ggml = "Q8_0"
    if ggml == "F16":
        return arr.astype(np.float16), None
    qtype = gguf.GGMLQuantizationType[ggml]
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    if arr.shape[-1] % block:
        return arr.astype(np.float16), None
    return quantize(arr.astype(np.float32), qtype), qtype


def write_tensors(writer, model, arch: Arch, gguf_type: str) -> dict[str, int]:
    """Add every weight under its llama.cpp name; returns the count per stored type."""
    import gguf

    cfg = model.config
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.name.upper()], cfg.num_hidden_layers)
    heads, kv = cfg.num_attention_heads, getattr(cfg, "num_key_value_heads", None) or \
        cfg.num_attention_heads
    ggml = TYPES[gguf_type][0]
    counts: dict[str, int] = {}
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and tied:
            continue
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise GGUFExportError(f"GGUF export: no llama.cpp name for tensor {hf_name}")
        arr = tensor.detach().float().cpu().numpy()
        if arch.permute_qk and ".attn_q." in name:
            arr = permute(arr, heads)
        elif arch.permute_qk and ".attn_k." in name:
            arr = permute(arr, kv)
        is_output = name == "output.weight" or (tied and name == "token_embd.weight")
        data, raw = _encode(arr, ggml, is_output)
        writer.add_tensor(name, data, raw_dtype=raw)
        stored = raw.name if raw is not None else ("F16" if data.dtype.itemsize == 2 else "F32")
        counts[stored] = counts.get(stored, 0) + 1
    return counts


def file_type(gguf_type: str) -> int:
    import gguf

    return int(gguf.LlamaFileType[TYPES[gguf_type][1]])
