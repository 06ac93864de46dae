"""lmforge predict: batch prediction to JSONL in the run's template, resumable, with voting,
retries and a fallback answer for unparseable ones.

The model comes first (``lmforge predict RUN --input ...``), as in chat, serve, eval and info;
``--model DIR`` still works but is deprecated: across commands ``--model`` names a model config
YAML (train, validate, eval, data, sweep)."""

from __future__ import annotations

from lmforge.commands._rope import add_rope_argument
from lmforge.commands._inference import add_precision_argument

HELP = "predict answers for a JSONL of prompts (resumable; --votes K for majority voting)"


def add_arguments(parser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL_OR_RUN", help="a run's output_dir, "
                        "a checkpoint, a merged export or a model directory (or builtin:<name>)")
    parser.add_argument("--model", dest="model_flag", metavar="DIR", help="deprecated: pass the "
                        "model as the first argument")
    parser.add_argument("--adapter", metavar="DIR", help="adapter to apply to --model")
    parser.add_argument("--input", required=True, metavar="FILE", help="rows with messages, "
                        "prompt, or instruction(+input); JSONL, JSON, CSV or Parquet")
    parser.add_argument("--output", required=True, metavar="FILE", help="JSONL written one "
                        "record per input; an existing file is resumed")
    parser.add_argument("--votes", type=int, default=1, metavar="K", help="sample K answers per "
                        "input and keep the majority answer (ties: highest mean log-prob)")
    parser.add_argument("--answer-pattern", metavar="REGEX", help="extracts the answer to vote "
                        "on (default: the run's eval.answer_pattern, else the whole text)")
    parser.add_argument("--retries", type=int, default=0, metavar="N", help="sample an input "
                        "again, up to N times, while its answer is unparseable (the pattern does "
                        "not match; without one: empty)")
    parser.add_argument("--fallback", metavar="VALUE", help="the answer of an input still "
                        "unparseable after the retries (marked \"fallback\": true), so every "
                        "input gets one")
    parser.add_argument("--template", help="built-in chat template (default: the model's own)")
    add_rope_argument(parser)
    parser.add_argument("--system", help="system prompt for inputs that have none")
    parser.add_argument("--max-new-tokens", type=int, metavar="N")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--repetition-penalty", type=float)
    parser.add_argument("--do-sample", action="store_true", help="sample (default: greedy, "
                        "except with --votes)")
    parser.add_argument("--seed", type=int, help="seed for sampling (default 0 with --votes)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N")
    add_precision_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    from lmforge.infer.vllm_backend import add_backend_argument

    add_backend_argument(parser)


def _generation(args, run_cfg):
    from lmforge.config.eval import GenerationConfig
    from lmforge.infer.engine import options

    base = run_cfg.eval.generation if run_cfg is not None else GenerationConfig()
    return options(base.model_copy(update={"num_return_sequences": 1}),
                   max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                   top_p=args.top_p, top_k=args.top_k, repetition_penalty=args.repetition_penalty,
                   seed=args.seed, do_sample=True if args.do_sample else None)


def _run_config(args):
    """The RunConfig saved with the adapter or the model (None for a plain model)."""
    from lmforge.infer.loading import run_config_of

    for path in (args.adapter, args.model):
        if path and not path.startswith("builtin:"):
            cfg = run_config_of(path)
            if cfg is not None:
                return cfg
    return None


def run(args) -> int:
    from pathlib import Path

    from rich.console import Console

    from lmforge.errors import ConfigError
    from lmforge.eval.inputs import prediction_inputs
    from lmforge.commands._rope import parse
    from lmforge.eval.predict import Retry, predict
    from lmforge.infer.progress import bar
    from lmforge.utils.logs import setup

    setup()
    model_argument(args, "predict")
    from lmforge.infer.vllm_backend import engine_class

    engine_cls = engine_class(getattr(args, "backend", "transformers"), "lmforge predict")
    if args.votes < 1:
        raise ConfigError(f"--votes: must be at least 1 (got {args.votes})", "use --votes 5")
    if args.retries < 0:
        raise ConfigError(f"--retries: must be 0 or more (got {args.retries})", "use --retries 3")
    rope = parse(args.rope_scaling)
    run_cfg = _run_config(args)
    columns = dict(run_cfg.data.columns) if run_cfg is not None else {}
    system = args.system or (run_cfg.data.system if run_cfg is not None else None)
    items = prediction_inputs(args.input, columns, system)  # bad input fails before loading
    pattern = args.answer_pattern or (run_cfg.eval.answer_pattern if run_cfg else None)
    if pattern:
        import re

        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"--answer-pattern: not a valid regular expression: {exc}",
                              "the answer is the first group, e.g. '答案是：([A-D])'") from None
    gen = _generation(args, run_cfg)
    from lmforge.commands._inference import precision_kwargs

    engine = engine_cls.load(args.model, adapter=args.adapter, template=args.template,
                             batch_size=args.batch_size, rope_scaling=rope,
                             **precision_kwargs(args))
    with bar(len(items), "predict", not args.no_progress) as advance:
        counts = predict(engine, items, Path(args.output), gen, args.votes, pattern, advance,
                         Retry(args.retries, args.fallback))
    Console().print(f"[bold green]done[/]: {counts['written']} written, {counts['skipped']} "
                    f"already in [bold]{args.output}[/]")
    Console().print(unparseable_report(counts, args))
    return 0


def unparseable_report(counts: dict, args) -> str:
    """One line: how many answers were unparseable and what became of them."""
    bad = counts["recovered"] + counts["fallback"] + counts["unparseable"]
    parts = [f"unparseable answers: {bad} of {counts['written']}"]
    if args.retries:
        parts.append(f"{counts['recovered']} recovered by a retry (--retries {args.retries})")
    if args.fallback is not None:
        parts.append(f"{counts['fallback']} set to the fallback '{args.fallback}'")
    if counts["unparseable"]:
        parts.append(f"{counts['unparseable']} left without an answer"
                     + ("" if args.fallback is not None else " (--fallback VALUE gives them one)"))
    return "; ".join(parts)


def model_argument(args, command: str) -> None:
    """The model from the first argument, or from the deprecated ``--model DIR``."""
    import logging

    from lmforge.errors import ConfigError

    if args.model_flag:
        if args.model:
            raise ConfigError(f"the model is given twice ({args.model} and --model "
                              f"{args.model_flag})", f"lmforge {command} {args.model} ...")
        logging.getLogger("lmforge").warning(
            "--model DIR is deprecated for lmforge %s: pass the model first (lmforge %s %s "
            "...); --model names a model config YAML in train, validate, eval and data",
            command, command, args.model_flag)
        args.model = args.model_flag
    if not args.model:
        raise ConfigError(f"lmforge {command}: no model given", f"lmforge {command} RUN_OR_MODEL "
                          "--input FILE --output FILE")
