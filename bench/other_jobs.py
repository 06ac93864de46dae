"""Non-training jobs: generation, data preprocessing, the machine's matmul peak."""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path


def _rows(path: str) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x]


def generate(spec: dict, workdir: Path) -> dict:
    """ChatEngine.generate on ``n`` chats: all in batches of ``batch_size`` (1 = one-by-one).
    Tokens are the completion tokens really produced (up to and including the stop token)."""
    from lmforge.infer.engine import ChatEngine

    engine = ChatEngine.load(spec["model"], batch_size=spec["batch_size"])
    chats = [[{"role": "user", "content": r["instruction"]}]
             for r in _rows(spec["prompts_file"])[:spec["n"]]]
    engine.generate(chats[:2], max_new_tokens=4, do_sample=False)  # warm-up, not timed
    start = time.perf_counter()
    cpu = time.process_time()
    outs = engine.generate(chats, max_new_tokens=spec["max_new_tokens"], do_sample=False)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    tokens = sum(len(c.token_ids) for o in outs for c in o.choices)
    return {"prompts": len(chats), "generated_tokens": tokens, "seconds": seconds,
            "tokens_per_s": tokens / seconds, "tokens_per_cpu_s": tokens / cpu if cpu else 0.0,
            "prompts_per_s": len(chats) / seconds,
            "texts": [o.choices[0].text for o in outs[:3]]}


def _lmforge_config(spec: dict, workdir: Path):
    from lmforge.config import validate

    return validate({"stage": "sft", "model": {"path": spec["model"]},
                     "data": {"train": spec["train_file"], "format": "messages",
                              "max_length": spec["max_length"], "packing": True, "cache": False,
                              "num_proc": spec.get("num_proc")},
                     "train": {"output_dir": str(workdir / "run"), "report_to": ["none"]}})


def _lmforge_prep(spec: dict, workdir: Path) -> tuple[int, int]:
    from lmforge.data import pipeline
    from lmforge.data.packing import pack_dataset

    cfg = _lmforge_config(spec, workdir)
    built = pipeline.build(cfg, spec["_tokenizer"], spec["_template"])
    packed, _ = pack_dataset(built.train, spec["max_length"])
    return len(built.train), len(packed)


def _trl_prep(spec: dict, workdir: Path) -> tuple[int, int]:
    import datasets
    from trl import SFTConfig, SFTTrainer

    data = datasets.Dataset.from_list(_rows(spec["train_file"]))
    args = SFTConfig(output_dir=str(workdir / "out"), use_cpu=True, bf16=False, packing=True,
                     max_length=spec["max_length"], assistant_only_loss=True,
                     dataset_num_proc=spec.get("num_proc"), report_to="none")
    trainer = SFTTrainer(model=spec["_model"], args=args, processing_class=spec["_tokenizer"],
                         train_dataset=data)
    return len(data), len(trainer.train_dataset)


def _chat_texts(spec: dict) -> list[str]:
    """The conversations rendered by the tokenizer's own chat template (the tokenizer's input)."""
    tok = spec["_tokenizer"]
    return [tok.apply_chat_template(r["messages"], tokenize=False)
            for r in _rows(spec["train_file"])]


def _tokenize_part(backend, texts: list[str]) -> int:
    encs = backend.encode_batch(texts, add_special_tokens=False)  # releases the GIL
    return sum(len(e.ids) + len(e.offsets) for e in encs)  # ids and offsets, as Python lists


def tokenizer_alone(tokenizer, texts: list[str], threads: int, chunk: int = 512,
                    cpu: list | None = None) -> float:
    """Seconds of the Rust tokenizer alone (``encode_batch``, ids and offsets to Python, nothing
    else) on ``texts``, in chunks on ``threads`` threads: the floor of any encoder that
    tokenizes every text once. ``cpu`` (a list) receives the CPU seconds of the process."""
    from concurrent.futures import ThreadPoolExecutor

    from lmforge.data.pipeline import paused_gc

    backend = tokenizer.backend_tokenizer
    parts = [texts[i:i + chunk] for i in range(0, len(texts), chunk)]
    with paused_gc():  # as in lmforge's pipeline
        start, used = time.perf_counter(), time.process_time()
        if threads <= 1:
            for part in parts:
                _tokenize_part(backend, part)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda part: _tokenize_part(backend, part), parts))
        if cpu is not None:
            cpu.append(time.process_time() - used)
        return time.perf_counter() - start


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def preprocess(spec: dict, workdir: Path) -> dict:
    """load (JSONL) -> render -> tokenize -> mask -> pack, timed end to end, ``repeats`` times
    (medians reported), each repetition followed by the Rust tokenizer alone on the same
    conversations (1 thread, then 2), so every pipeline figure has a tokenizer figure taken under
    the same machine load; the CPU seconds of both (2 threads) are reported too. For both tools the libraries are imported and the tokenizer (trl: and
    the model) loaded before the clock starts, so what is timed is the data preparation itself."""
    if spec["tool"] == "trl":
        import trl  # noqa: F401 - imported before the clock, like lmforge's modules
        from transformers import AutoModelForCausalLM, AutoTokenizer

        spec = dict(spec, _model=AutoModelForCausalLM.from_pretrained(spec["model"]),
                    _tokenizer=AutoTokenizer.from_pretrained(spec["model"]))
    else:  # datasets too: trl imports it before the clock, lmforge's pipeline when it ends
        import datasets  # noqa: F401
        import lmforge.data.packing  # noqa: F401
        import lmforge.data.pipeline  # noqa: F401
        from lmforge.data.templates import resolve_template
        from lmforge.model.loader import load_tokenizer

        tokenizer = load_tokenizer(_lmforge_config(spec, workdir).model)
        spec = dict(spec, _tokenizer=tokenizer, _template=resolve_template("auto", tokenizer))
    prep = _trl_prep if spec["tool"] == "trl" else _lmforge_prep
    texts = _chat_texts(spec)
    runs = []
    for _ in range(max(1, spec.get("repeats", 1))):  # interleaved: pipeline, tokenizer 1 / 2
        load = _load()
        start, used = time.perf_counter(), time.process_time()
        examples, blocks = prep(spec, workdir)
        seconds, used = time.perf_counter() - start, time.process_time() - used
        cpu: list[float] = []
        one, two = (len(texts) / tokenizer_alone(spec["_tokenizer"], texts, n, cpu=cpu)
                    for n in (1, 2))
        runs.append({"seconds": seconds, "examples_per_s": examples / seconds,
                     "tokenizer_1t": one, "tokenizer_2t": two, "load_average": load,
                     "cpu_seconds": used, "tokenizer_cpu_seconds": cpu[-1]})
    med = statistics.median
    eps = [r["examples_per_s"] for r in runs]
    return {"examples": examples, "blocks": blocks, "num_proc": spec.get("num_proc") or 1,
            "repeats": len(runs), "seconds": med([r["seconds"] for r in runs]),
            "examples_per_s": med(eps), "examples_per_s_min": min(eps),
            "examples_per_s_max": max(eps),
            "tokenizer_1t_examples_per_s": med([r["tokenizer_1t"] for r in runs]),
            "tokenizer_examples_per_s": med([r["tokenizer_2t"] for r in runs]),
            "of_tokenizer": med([r["examples_per_s"] / r["tokenizer_2t"] for r in runs]),
            # CPU seconds (all threads): what a loaded machine's figures depend on
            "cpu_seconds": med([r["cpu_seconds"] for r in runs]),
            "tokenizer_cpu_seconds": med([r["tokenizer_cpu_seconds"] for r in runs]),
            "load_average": med([r["load_average"] for r in runs]), "runs": runs}


def matmul(spec: dict, workdir: Path) -> dict:
    """The dense matmul peaks utilisation is measured against: fp32 always; bf16 where the CPU
    has it (torch's oneDNN check; ``bf16_native`` says whether the CPU flags show AVX512-BF16 or
    AMX, without which oneDNN emulates bf16); on a GPU, the CUDA bf16 peak."""
    import torch

    from bench.measure import matmul_peak
    from lmforge.training.device import cpu_native_bf16

    size = spec.get("size", 1024)
    out = {"matmul_flops": matmul_peak(spec["threads"], size), "threads": spec["threads"],
           "size": size}
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        out["matmul_flops_bf16"] = matmul_peak(spec["threads"], 2 * size, dtype="bfloat16")
        out["bf16_native"] = cpu_native_bf16()
    if torch.cuda.is_available():
        for key, dtype in (("cuda_matmul_flops", "float32"), ("cuda_matmul_flops_bf16",
                                                              "bfloat16")):
            out[key] = matmul_peak(spec["threads"], 8192, repeats=20, dtype=dtype,
                                   device="cuda")
        out["gpu"] = torch.cuda.get_device_name(0)
    return out
