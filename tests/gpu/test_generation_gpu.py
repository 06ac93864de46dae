"""Batched generation on the GPU (marker ``gpu``; skipped without CUDA).

ChatEngine pads a batch on the left and generates it in one ``generate`` call; its greedy answers
must be the ones each prompt gets alone. On a GPU a batch of another shape may pick other kernels,
so float sums can differ in the last bits and a near-tie may flip. So every generated token, of the
batched and of the one-by-one answers, is checked against the model run alone on the unpadded
prompt and the answer so far: it must be the argmax there, or within the dtype's rounding of it
(relative to the top logit). The count of bit-identical answers is printed.

Cases: the tiny model in float32 (the tie tolerance is 1e-4 there: its logits are small and flat,
so half precision would make almost every step a tie), SmolLM2-135M-Instruct (when its asset is
installed) in bfloat16 with the automatic attention (flash-attention 2 when installed) and with
sdpa, and in float16. Batched log-likelihoods equal single rows in float32.
"""

from __future__ import annotations

import pytest

from tests.gpu.gpu_runs import GPU, SMOLLM2, needs_native_bf16, needs_smollm2

pytestmark = GPU

CHATS = [[{"role": "user", "content": f"question {i}: " + "word " * (3 * i)}] for i in range(10)]
TIE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 2e-2}  # of the top logit's magnitude
CASES = [
    pytest.param("tiny", "float32", False, id="tiny-fp32"),
    pytest.param("smollm2", "bfloat16", False, id="smollm2-bf16-auto",
                 marks=[needs_native_bf16, needs_smollm2]),
    pytest.param("smollm2", "bfloat16", True, id="smollm2-bf16-sdpa",
                 marks=[needs_native_bf16, needs_smollm2]),
    pytest.param("smollm2", "float16", False, id="smollm2-fp16", marks=needs_smollm2),
]


def _engine(model: str, dtype: str, tiny_model_dir):
    from lmforge.infer.engine import ChatEngine

    path = str(tiny_model_dir) if model == "tiny" else SMOLLM2
    engine = ChatEngine.load(path, dtype=dtype, batch_size=4)
    assert engine.device.type == "cuda"
    return engine


def _worst_gap(engine, chat, answer: list[int]) -> float:
    """The largest (top logit - logit of the generated token) / max(1, |top logit|) over the
    answer's tokens, the model alone, fed the prompt and the answer so far (one forward)."""
    import torch

    prompt = engine.encode(engine.render(chat))
    ids = torch.tensor([prompt + list(answer)], device=engine.device)
    with torch.no_grad():
        logits = engine.model(input_ids=ids).logits[0].float()
    steps = logits[len(prompt) - 1:len(prompt) - 1 + len(answer)]
    chosen = steps.gather(-1, torch.tensor(answer, device=engine.device)[:, None]).squeeze(-1)
    top = steps.max(-1).values
    return float(((top - chosen) / top.abs().clamp(min=1.0)).max())


@pytest.mark.parametrize("model, dtype, no_flash", CASES)
def test_batched_greedy_equals_one_by_one(model, dtype, no_flash, tiny_model_dir, monkeypatch):
    from lmforge.model.loader import attention_kind

    if no_flash:
        monkeypatch.setenv("LMFORGE_NO_FLASH_ATTENTION", "1")
    else:
        monkeypatch.delenv("LMFORGE_NO_FLASH_ATTENTION", raising=False)
    engine = _engine(model, dtype, tiny_model_dir)
    assert str(next(engine.model.parameters()).dtype) == f"torch.{dtype}"
    if no_flash:
        assert attention_kind(engine.model) == "sdpa"
    batched = engine.generate(CHATS, max_new_tokens=16)
    single = [engine.generate([c], max_new_tokens=16)[0] for c in CHATS]
    assert [b.prompt_tokens for b in batched] == [s.prompt_tokens for s in single]
    for chat, b, s in zip(CHATS, batched, single):
        for name, answer in (("batched", b.choices[0].token_ids),
                             ("one-by-one", s.choices[0].token_ids)):
            assert answer, f"{name}: empty answer"
            gap = _worst_gap(engine, chat, answer)
            assert gap <= TIE[dtype], (
                f"{name} greedy answer {answer} holds a token that is not the model's argmax "
                f"(relative gap {gap:.3g} > {TIE[dtype]}) for {chat}")
    same = sum(b.choices[0].token_ids == s.choices[0].token_ids for b, s in zip(batched, single))
    print(f"\n{model} {dtype} ({attention_kind(engine.model)}): {same}/{len(CHATS)} batched "
          "answers bit-identical to one-by-one; every token of both is the greedy choice")


def test_batched_loglikelihood_equals_single_rows(tiny_model_dir):
    engine = _engine("tiny", "float32", tiny_model_dir)
    pairs = [(engine.encode(engine.render(c)), engine.encode(" the answer is four"))
             for c in CHATS[:6]]
    together = engine.loglikelihood(pairs)
    alone = [engine.loglikelihood([p])[0] for p in pairs]
    for t, a in zip(together, alone):
        assert t == pytest.approx(a, abs=1e-4)
