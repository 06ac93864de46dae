"""lmforge eval: task metrics of a model or a run on eval data, or a multiple-choice benchmark."""

from __future__ import annotations

from lmforge.commands._runargs import add_run_arguments

HELP = "evaluate a model or a run: task metrics on eval data, or an MMLU/C-Eval/CMMLU benchmark"


def add_arguments(parser) -> None:
    add_run_arguments(parser)
    parser.set_defaults(model_dir=None)
    parser.epilog = ("--model takes a model config YAML (with --data) or a directory to evaluate "
                     "(a run's output_dir, a checkpoint, a merged export, a model). "
                     + (parser.epilog or ""))
    parser.add_argument("--adapter", metavar="DIR", help="adapter to apply to --model")
    parser.add_argument("--template", help="built-in chat template (default: the model's own)")
    parser.add_argument("--data-file", metavar="FILE", help="evaluate on this file instead of "
                        "the run's data.eval")
    parser.add_argument("--format", choices=["alpaca", "prompt_response", "messages"],
                        help="row format of --data-file (default: the run's, else detected)")
    parser.add_argument("--metrics", help="comma-separated metrics (default: eval.metrics, "
                        "else exact_match,rouge)")
    parser.add_argument("--answer-pattern", metavar="REGEX", help="extract answers (first group)")
    parser.add_argument("--max-samples", type=int, metavar="N", help="evaluate N examples at most")
    parser.add_argument("--max-new-tokens", type=int, metavar="N")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N")
    parser.add_argument("--output-dir", metavar="DIR", help="where predictions.jsonl and "
                        "eval_metrics.json go (default: <run dir>/eval, else ./eval)")
    parser.add_argument("--compare", metavar="BASE_MODEL", help="also evaluate this (base) model "
                        "with the same template and data, side by side")
    parser.add_argument("--benchmark", choices=["mmlu", "ceval", "cmmlu"],
                        help="multiple-choice benchmark from local files (--data-dir)")
    parser.add_argument("--data-dir", metavar="DIR", help="benchmark files (published layout)")
    parser.add_argument("--split", help="benchmark split (default: mmlu/cmmlu test, ceval val)")
    parser.add_argument("--subjects", help="comma-separated benchmark subjects (default: all)")
    parser.add_argument("--shots", type=int, default=0, metavar="K", help="few-shot examples "
                        "from the dev split (default 0)")
    parser.add_argument("--prompt-style", choices=["auto", "chat", "raw"], default="auto",
                        help="benchmark prompts as a chat in the model's template, or raw text "
                        "(auto: chat when the model has a template)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _split_model_arg(args) -> None:
    """``--model`` names a model config YAML or, for this command, a directory to evaluate."""
    from pathlib import Path

    c = args.config  # `lmforge eval runs/x`: a directory given where a run config could be
    if c and not args.model_config and (c.startswith("builtin:") or Path(c).is_dir()):
        args.model_dir, args.config = c, None
        return
    m = args.model_config
    if m and (m.startswith("builtin:") or Path(m).is_dir()
              or not m.endswith((".yaml", ".yml"))):
        args.model_dir, args.model_config = m, None


def _setup(args):
    """(model path, RunConfig or None) from the arguments."""
    from pathlib import Path

    from lmforge.commands._runargs import load_run
    from lmforge.errors import ConfigError
    from lmforge.infer.loading import run_config_of

    _split_model_arg(args)
    cfg = None
    if args.config or args.data_config or args.model_config:
        cfg = load_run(args)
    path = args.model_dir or (cfg.train.output_dir if cfg is not None else None)
    if path is None:
        raise ConfigError("nothing to evaluate", "pass --model DIR (a run's output_dir, a "
                          "checkpoint, a model) or a run config")
    if not path.startswith("builtin:") and not Path(path).exists():
        from lmforge.errors import ModelError

        hint = ("train the run first" if args.model_dir is None else
                "pass a run's output_dir, a checkpoint-N, a merged export or a model directory")
        raise ModelError(f"{path}: no such directory", hint)
    if cfg is None and not path.startswith("builtin:"):
        cfg = run_config_of(path)
    return path, cfg


def run(args) -> int:
    from lmforge.eval import cli_eval
    from lmforge.utils.logs import setup

    setup()
    path, cfg = _setup(args)
    if args.benchmark:
        return cli_eval.run_benchmark(args, path)
    return cli_eval.run_task_eval(args, path, cfg)
