"""Non-training jobs: generation, data preprocessing, the machine's matmul peak."""

from __future__ import annotations

import json
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


_FLOOR: dict = {}  # the tokenizer and texts the forked workers of tokenizer_floor share


def _tokenize_part(bounds: tuple[int, int]) -> int:
    texts = _FLOOR["texts"][bounds[0]:bounds[1]]
    encs = _FLOOR["backend"].encode_batch(texts, add_special_tokens=False)
    return sum(len(e.ids) + len(e.offsets) for e in encs)


def tokenizer_floor(spec: dict) -> float:
    """Examples/s of the Rust tokenizer alone (``encode_batch``, ids and offsets, nothing else)
    on the rendered conversations, in as many forked processes as the job used: the floor of any
    encoder that tokenizes every text once."""
    import multiprocessing

    tok = spec["_tokenizer"]
    texts = [tok.apply_chat_template(r["messages"], tokenize=False)
             for r in _rows(spec["train_file"])]
    _FLOOR.update(texts=texts, backend=tok.backend_tokenizer)
    procs = spec.get("num_proc") or 1
    step = -(-len(texts) // procs)
    start = time.perf_counter()
    if procs > 1:
        with multiprocessing.get_context("fork").Pool(procs) as pool:
            pool.map(_tokenize_part, [(i, i + step) for i in range(0, len(texts), step)])
    else:
        _tokenize_part((0, len(texts)))
    return len(texts) / (time.perf_counter() - start)


def preprocess(spec: dict, workdir: Path) -> dict:
    """load (JSONL) -> render -> tokenize -> mask -> pack, timed end to end. For both tools the
    libraries are imported and the tokenizer (trl: and the model) loaded before the clock starts,
    so what is timed is the data preparation itself."""
    if spec["tool"] == "trl":
        import trl  # noqa: F401 - imported before the clock, like lmforge's modules
        from transformers import AutoModelForCausalLM, AutoTokenizer

        spec = dict(spec, _model=AutoModelForCausalLM.from_pretrained(spec["model"]),
                    _tokenizer=AutoTokenizer.from_pretrained(spec["model"]))
    else:
        import lmforge.data.packing  # noqa: F401
        import lmforge.data.pipeline  # noqa: F401
        from lmforge.data.templates import resolve_template
        from lmforge.model.loader import load_tokenizer

        tokenizer = load_tokenizer(_lmforge_config(spec, workdir).model)
        spec = dict(spec, _tokenizer=tokenizer, _template=resolve_template("auto", tokenizer))
    start = time.perf_counter()
    examples, blocks = (_trl_prep if spec["tool"] == "trl" else _lmforge_prep)(spec, workdir)
    seconds = time.perf_counter() - start
    out = {"examples": examples, "blocks": blocks, "seconds": seconds,
           "examples_per_s": examples / seconds, "num_proc": spec.get("num_proc") or 1}
    if spec["tool"] != "trl":
        out["tokenizer_examples_per_s"] = tokenizer_floor(spec)
    return out


def matmul(spec: dict, workdir: Path) -> dict:
    from bench.measure import matmul_peak

    flops = matmul_peak(spec["threads"], spec.get("size", 1024))
    return {"matmul_flops": flops, "threads": spec["threads"]}
