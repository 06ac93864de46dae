"""lmforge predict: batch prediction to JSONL in the run's template, resumable, with voting."""

from __future__ import annotations

HELP = "predict answers for a JSONL of prompts (resumable; --votes K for majority voting)"


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="a run's output_dir, a "
                        "checkpoint, a merged export or a model directory (or builtin:<name>)")
    parser.add_argument("--adapter", metavar="DIR", help="adapter to apply to --model")
    parser.add_argument("--input", required=True, metavar="FILE", help="rows with messages, "
                        "prompt, or instruction(+input); JSONL, JSON, CSV or Parquet")
    parser.add_argument("--output", required=True, metavar="FILE", help="JSONL written one "
                        "record per input; an existing file is resumed")
    parser.add_argument("--votes", type=int, default=1, metavar="K", help="sample K answers per "
                        "input and keep the majority answer (ties: highest mean log-prob)")
    parser.add_argument("--answer-pattern", metavar="REGEX", help="extracts the answer to vote "
                        "on (default: the run's eval.answer_pattern, else the whole text)")
    parser.add_argument("--template", help="built-in chat template (default: the model's own)")
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
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


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
    from lmforge.eval.predict import predict
    from lmforge.infer.engine import ChatEngine
    from lmforge.infer.progress import bar
    from lmforge.utils.logs import setup

    setup()
    if args.votes < 1:
        raise ConfigError(f"--votes: must be at least 1 (got {args.votes})", "use --votes 5")
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
    engine = ChatEngine.load(args.model, adapter=args.adapter, template=args.template,
                             batch_size=args.batch_size)
    with bar(len(items), "predict", not args.no_progress) as advance:
        counts = predict(engine, items, Path(args.output), gen, args.votes, pattern, advance)
    Console().print(f"[bold green]done[/]: {counts['written']} written, {counts['skipped']} "
                    f"already in [bold]{args.output}[/]")
    return 0
