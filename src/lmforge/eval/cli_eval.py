"""The work behind ``lmforge eval``: task metrics on eval data (optionally against a base model)
and multiple-choice benchmarks. Kept out of ``commands/eval.py`` so the CLI module stays light."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

from lmforge.config.constants import RUN_CONFIG_FILE
from lmforge.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_METRICS = ["exact_match", "rouge"]
PREFERENCE_STAGES = ("rm", "dpo", "kto", "orpo")  # evaluated on held-out pairs (eval/preference.py)


def eval_config(args, cfg):
    """The run's ``eval:`` section with the command-line overrides applied."""
    from pydantic import ValidationError

    from lmforge.config.eval import EvalConfig
    from lmforge.config.report import format_errors

    base = cfg.eval.model_dump() if cfg is not None else {}
    if args.metrics:
        base["metrics"] = [m.strip() for m in args.metrics.split(",") if m.strip()]
    elif not base.get("metrics"):
        base["metrics"] = list(DEFAULT_METRICS)
    for key in ("answer_pattern", "max_samples"):
        if getattr(args, key, None) is not None:
            base[key] = getattr(args, key)
    if args.max_new_tokens:
        base.setdefault("generation", {})["max_new_tokens"] = args.max_new_tokens
    if getattr(args, "mode", None):
        base["mode"] = args.mode
    if getattr(args, "choices", None):
        base["choices"] = [c.strip() for c in args.choices.split(",") if c.strip()]
    try:
        return EvalConfig.model_validate(base)
    except ValidationError as exc:
        raise ConfigError([f"eval.{p}" for p in format_errors(exc, EvalConfig)]) from None


def data_config(args, path: str, cfg):
    """A RunConfig that describes the data to read (the run's own, or one for --data-file)."""
    if cfg is not None:
        return cfg
    if not args.data_file:
        raise ConfigError(f"{path} is not a run directory, so it has no eval data",
                          "pass --data-file FILE (and --format if it cannot be detected)")
    from lmforge.config import validate
    from lmforge.eval.inputs import detect_format

    fmt = args.format or detect_format(args.data_file)
    return validate({"model": {"path": path}, "data": {"format": fmt}})


def output_dir(args, path: str) -> Path:
    if args.output_dir:
        return Path(args.output_dir)
    p = Path(path)
    return p / "eval" if (p / RUN_CONFIG_FILE).is_file() else Path("eval")


def _engine(path: str, args, adapter: str | None = None, template: str | None = None):
    from lmforge.infer.vllm_backend import engine_class

    from lmforge.commands._rope import parse

    from lmforge.commands._inference import precision_kwargs

    cls = engine_class(getattr(args, "backend", "transformers"), "lmforge eval")
    return cls.load(path, adapter=adapter, template=template, batch_size=args.batch_size,
                    rope_scaling=parse(args.rope_scaling), **precision_kwargs(args))


def _free(engine) -> None:
    del engine
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _evaluate(engine, samples, ecfg, args, label: str):
    from lmforge.eval.runner import evaluate
    from lmforge.infer.progress import bar

    names = list(dict.fromkeys(list(ecfg.metrics) + ecfg.generation_metrics))
    with bar(len(samples), f"generate ({label})", not args.no_progress) as advance:
        return evaluate(engine, samples, ecfg, names, progress=advance)


def run_task_eval(args, path: str, cfg) -> int:
    from rich.console import Console

    from lmforge.eval.inputs import eval_samples
    from lmforge.eval.report import metrics_table, write_json, write_jsonl

    ecfg = eval_config(args, cfg)
    samples = eval_samples(data_config(args, path, cfg), args.data_file, args.format,
                           ecfg.max_samples)
    out = output_dir(args, path)
    engine = _engine(path, args, args.adapter, args.template)
    metrics, records = _evaluate(engine, samples, ecfg, args, "model")
    write_jsonl(out / "predictions.jsonl", records)
    summary = {"model": engine.name, "examples": len(samples), "metrics": metrics}
    tables = {"model": metrics}
    if args.compare:
        template = engine.template
        _free(engine)
        base = _engine(args.compare, args).with_template(template)
        base_metrics, base_records = _evaluate(base, samples, ecfg, args, "base")
        write_jsonl(out / "base_predictions.jsonl", base_records)
        summary["base"] = {"model": args.compare, "metrics": base_metrics}
        tables["base"] = base_metrics
    write_json(out / "eval_metrics.json", summary)
    console = Console()
    console.print(metrics_table(tables, f"{len(samples)} examples"))
    console.print(f"predictions and metrics in [bold]{out}[/]")
    return 0


def run_preference_eval(args, path: str, cfg) -> int:
    """Reward accuracy and margin of an rm/dpo/kto/orpo run on its eval split (or --data-file)."""
    from rich.console import Console

    from lmforge.eval.preference import evaluate_run
    from lmforge.eval.report import metrics_table, write_json, write_jsonl

    if args.compare or args.metrics or args.answer_pattern:
        raise ConfigError(f"--compare, --metrics and --answer-pattern are for generation "
                          f"metrics; a {cfg.stage} run is evaluated on preference pairs",
                          "drop them: lmforge eval reports reward accuracy and margin")
    result = evaluate_run(path, cfg, args.data_file, args.max_samples, args.batch_size,
                          args.adapter)
    out = output_dir(args, path)
    write_jsonl(out / "rewards.jsonl", result.pop("records"))
    write_json(out / "eval_metrics.json", result)
    console = Console()
    table = {k: v for k, v in result.items() if isinstance(v, float)}
    console.print(metrics_table({"model": table}, f"{result['stage']}: {result['examples']} "
                                f"held-out {result['unit']} ({result['reward']})"))
    console.print(f"rewards and metrics in [bold]{out}[/]")
    return 0


def run_benchmark(args, path: str) -> int:
    from rich.console import Console

    from lmforge.eval import benchmark
    from lmforge.eval.report import benchmark_table, write_json, write_jsonl

    if not args.data_dir:
        raise ConfigError("--benchmark needs --data-dir DIR", "point --data-dir at the "
                          "benchmark's files, unpacked in their published layout")
    subjects = [s.strip() for s in args.subjects.split(",")] if args.subjects else None
    data = benchmark.load(args.benchmark, args.data_dir, args.split, subjects)
    out = output_dir(args, path)
    console = Console()
    summary = {}
    for label, model_path in (("model", path), ("base", args.compare)):
        if model_path is None:
            continue
        engine = _engine(model_path, args, args.adapter if label == "model" else None,
                         args.template)
        results, records = _benchmark(engine, data, args)
        stem = f"{args.benchmark}" if label == "model" else f"{args.benchmark}_base"
        write_jsonl(out / f"{stem}_predictions.jsonl", records)
        summary[label] = results
        console.print(benchmark_table(results, f"{args.benchmark} ({label}: {engine.name}, "
                                               f"{results['prompt_style']}, "
                                               f"{args.shots}-shot)"))
        _free(engine)
    write_json(out / f"{args.benchmark}.json", summary)
    console.print(f"results in [bold]{out / (args.benchmark + '.json')}[/]")
    return 0


def _benchmark(engine, data: dict, args) -> tuple[dict, list]:
    from lmforge.eval import benchmark
    from lmforge.infer.progress import bar

    layout = benchmark.LAYOUTS[args.benchmark]
    chat = args.prompt_style == "chat" or (args.prompt_style == "auto"
                                           and engine.template is not None)
    total = sum(len(items) for _, items in data.values())
    with bar(total, f"{args.benchmark}", not args.no_progress) as advance:
        results, records = benchmark.run(data, benchmark.engine_scorer(engine), args.shots,
                                          layout.chinese, chat, args.batch_size, advance)
    results.update(model=engine.name, benchmark=args.benchmark, shots=args.shots,
                   split=args.split or layout.split, prompt_style="chat" if chat else "raw")
    return results, records
