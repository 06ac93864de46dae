"""vLLM on a CUDA GPU (marker ``gpu``; skipped, with the reason, without CUDA and vLLM):
the vLLM engine answers like the transformers engine (greedy, the tiny model), scores
continuations like it, serves the OpenAI API, and GRPO generates its rollouts with vLLM.

Run with ``pytest -m gpu tests/gpu``.
"""

from __future__ import annotations

import pytest

from lmforge.infer.vllm_check import vllm_problem

PROBLEM = vllm_problem()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")]

CHATS = [[{"role": "user", "content": f"question {i}: " + "word " * i}] for i in range(12)]


@pytest.fixture(scope="module")
def engines(tiny_model_dir):
    from lmforge.infer.engine import ChatEngine
    from lmforge.infer.vllm_engine import VLLMEngine

    return (ChatEngine.load(str(tiny_model_dir), dtype="float32"),
            VLLMEngine.load(str(tiny_model_dir), dtype="float32"))


def test_greedy_answers_match_transformers(engines):
    hf, vl = engines
    want = hf.generate(CHATS, max_new_tokens=12)
    got = vl.generate(CHATS, max_new_tokens=12)
    same = sum(a.choices[0].token_ids == b.choices[0].token_ids for a, b in zip(want, got))
    print(f"\nvLLM vs transformers greedy: {same}/{len(CHATS)} identical")
    assert same >= len(CHATS) - 1  # float kernels differ; near-ties may flip one
    assert [c.prompt_tokens for c in want] == [c.prompt_tokens for c in got]


def test_loglikelihood_matches_transformers(engines):
    hf, vl = engines
    pairs = [(hf.encode(hf.render(c)), [5, 17, 99]) for c in CHATS[:4]]
    for a, b in zip(hf.loglikelihood(pairs), vl.loglikelihood(pairs)):
        assert max(abs(x - y) for x, y in zip(a, b)) < 1e-2


def test_serve_with_the_vllm_engine(engines):
    from fastapi.testclient import TestClient

    from lmforge.infer.engine import options
    from lmforge.serve.app import Settings
    from lmforge.serve.server import build

    hf, vl = engines
    app, sched = build(vl, Settings(name="tiny", gen=options(None, max_new_tokens=8)), 8, 8)
    try:
        with TestClient(app) as client:
            r = client.post("/v1/chat/completions", json={"model": "tiny", "messages": CHATS[3],
                                                          "max_tokens": 8, "temperature": 0})
            assert r.status_code == 200
            assert r.json()["choices"][0]["message"]["content"] == vl.generate(
                [CHATS[3]], max_new_tokens=8)[0].text
    finally:
        sched.close()


def test_grpo_rollouts_with_vllm(tmp_path):
    from lmforge.config.loader import load
    from lmforge.stages import run
    from tests.conftest import REPO

    cfg = load(str(REPO / "examples/tiny/grpo.yaml"), overrides=[
        "grpo.use_vllm=true", "train.max_steps=2", f"output_dir={tmp_path / 'run'}"])
    result = run(cfg)
    assert (tmp_path / "run").is_dir() and result is not None
