"""lmforge eval: task metrics of a model or a run on eval data, a preference run's held-out reward
accuracy and margin, or a multiple-choice benchmark.

What to evaluate comes first (``lmforge eval RUN_DIR``) or from run configs (``lmforge eval
run.yaml`` / ``--data d.yaml --model m.yaml``: their train.output_dir). ``--model DIR`` still
works but is deprecated: ``--model`` names a model config YAML here as in train and validate.
Overrides (``key.path=value``) apply to the run's config (its saved one for a run directory);
only the keys evaluation reads are accepted (``EVAL_KEYS``), anything else is an error.
"""

from __future__ import annotations

from lmforge.commands._rope import add_rope_argument
from lmforge.commands._runargs import add_run_arguments

HELP = ("evaluate a model or a run: task metrics on eval data, reward accuracy/margin of a "
        "preference run, or an MMLU/C-Eval/CMMLU benchmark")

# the keys an override may set: what evaluation reads (train.output_dir: what is evaluated)
EVAL_KEYS = ("eval", "data", "model.template", "model.rope_scaling", "train.output_dir")


def add_arguments(parser) -> None:
    add_run_arguments(parser)
    parser.set_defaults(model_dir=None)
    parser.epilog = ("the first argument is a run config YAML or what to evaluate (a run's "
                     "output_dir, a checkpoint, a merged export, a model); --model takes a model "
                     "config YAML (with --data). Overrides may set " + ", ".join(EVAL_KEYS)
                     + ". " + (parser.epilog or ""))
    add_rope_argument(parser)
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
    parser.add_argument("--mode", choices=["generate", "choices"], help="generate answers "
                        "(default), or score each allowed answer by its likelihood and pick the "
                        "best (eval.mode: choices)")
    parser.add_argument("--choices", metavar="A,B,...", help="the allowed answers for --mode "
                        "choices (default: the distinct reference answers)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N")
    from lmforge.commands._inference import add_precision_argument

    add_precision_argument(parser)
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
    from lmforge.infer.vllm_backend import add_backend_argument

    add_backend_argument(parser)


def _split_model_arg(args) -> None:
    """The first argument is a run config or what to evaluate; ``--model`` is a model config
    YAML, and the deprecated alias for what to evaluate when it is not one."""
    import logging
    from pathlib import Path

    c = args.config  # `lmforge eval runs/x`: a directory given where a run config could be
    if c and (c.startswith("builtin:") or Path(c).is_dir()):
        args.model_dir, args.config = c, None
    m = args.model_config
    if m and (m.startswith("builtin:") or Path(m).is_dir()
              or not m.endswith((".yaml", ".yml"))):
        logging.getLogger("lmforge").warning(
            "--model DIR is deprecated for lmforge eval: pass what to evaluate first (lmforge "
            "eval %s ...); --model names a model config YAML, as in train and validate", m)
        if args.model_dir:
            from lmforge.errors import ConfigError

            raise ConfigError(f"two models to evaluate: {args.model_dir} and --model {m}")
        args.model_dir, args.model_config = m, None


def check_override_keys(overrides) -> None:
    """Only the keys evaluation reads may be overridden (the rest would be silently ignored)."""
    from lmforge.config.loader import parse_override
    from lmforge.errors import ConfigError

    bad = []
    for text in overrides.merged + overrides.data + overrides.model:
        key = ".".join(parse_override(text)[0])
        if not any(key == k or key.startswith(k + ".") for k in EVAL_KEYS):
            bad.append(f"{key}: lmforge eval does not read it (overrides may set "
                       f"{', '.join(EVAL_KEYS)})")
    if bad:
        raise ConfigError(bad, "train with the changed key first (lmforge train RUN.yaml "
                          "key=value), then evaluate that run")


def _saved_config(path: str, overrides):
    """The RunConfig saved with a run directory (or a checkpoint in it), overrides applied."""
    from pathlib import Path

    from lmforge.config.constants import RUN_CONFIG_FILE
    from lmforge.errors import ConfigError
    from lmforge.infer.loading import located, run_config_of

    given = overrides.merged + overrides.data + overrides.model
    if not given:
        return run_config_of(path)
    if overrides.data or overrides.model:
        raise ConfigError("--D./--M. overrides edit data/model config files; a run directory "
                          "has one saved run config: use key.path=value")
    p = Path(path)
    for d in (p, p.parent):
        if (d / RUN_CONFIG_FILE).is_file():
            from lmforge.config import load

            return located(load(str(d / RUN_CONFIG_FILE), overrides=overrides.merged), d)
    raise ConfigError(f"{path} is not a run directory, so there is no run config for "
                      f"{', '.join(given)}", "use the flags (--data-file, --metrics, "
                      "--template, --rope-scaling, ...) for a plain model")


def _setup(args):
    """(model path, RunConfig or None) from the arguments."""
    from pathlib import Path

    from lmforge.commands._runargs import load_run
    from lmforge.errors import ConfigError

    _split_model_arg(args)
    check_override_keys(args.overrides)
    cfg = None
    if args.config or args.data_config or args.model_config:
        cfg = load_run(args)
    path = args.model_dir or (cfg.train.output_dir if cfg is not None else None)
    if path is None:
        raise ConfigError("nothing to evaluate", "lmforge eval RUN_DIR (a run's output_dir, a "
                          "checkpoint, a model), or a run config")
    if not path.startswith("builtin:") and not Path(path).exists():
        from lmforge.errors import ModelError

        hint = ("train the run first" if args.model_dir is None else
                "pass a run's output_dir, a checkpoint-N, a merged export or a model directory")
        raise ModelError(f"{path}: no such directory", hint)
    if cfg is None and path.startswith("builtin:") and any(vars(args.overrides).values()):
        raise ConfigError(f"{path} is not a run, so there is no run config for the overrides",
                          "use the flags (--data-file, --metrics, --template, ...)")
    if cfg is None and not path.startswith("builtin:"):
        cfg = _saved_config(path, args.overrides)
    _overridden_model_keys(args, cfg)
    return path, cfg


def _overridden_model_keys(args, cfg) -> None:
    """model.template / model.rope_scaling overrides reach the loaded model like the flags."""
    from lmforge.config.loader import parse_override

    keys = {".".join(parse_override(t)[0]) for t in args.overrides.merged}
    if cfg is None:
        return
    if any(k.startswith("model.template") for k in keys) and not args.template:
        args.template = cfg.model.template
    if any(k.startswith("model.rope_scaling") for k in keys) and not args.rope_scaling:
        rope = cfg.model.rope_scaling
        args.rope_scaling = f"{rope.type}:{rope.factor}" if rope is not None else None


def run(args) -> int:
    from lmforge.eval import cli_eval
    from lmforge.utils.logs import setup

    setup()
    if args.backend == "vllm":  # before any config or model loads
        from lmforge.infer.vllm_check import require_vllm

        require_vllm("lmforge eval --backend vllm")
    path, cfg = _setup(args)
    if args.benchmark:
        return cli_eval.run_benchmark(args, path)
    if cfg is not None and cfg.stage in cli_eval.PREFERENCE_STAGES:
        return cli_eval.run_preference_eval(args, path, cfg)
    return cli_eval.run_task_eval(args, path, cfg)
