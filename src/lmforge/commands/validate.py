"""lmforge validate: parse + validate a config and build the training arguments, no model load."""

from __future__ import annotations

from lmforge.commands._runargs import add_run_arguments, load_run

HELP = "check a run config (all problems at once) without loading a model"


def add_arguments(parser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--print", action="store_true", help="print the resolved config")


def check_files(cfg) -> list[str]:
    from pathlib import Path

    from lmforge.data.templates import builtin_names
    from lmforge.utils.builtin import BUILTINS, PREFIX

    problems = []
    for key in ("train", "eval"):
        spec = getattr(cfg.data, key)
        if spec is None or isinstance(spec, float) or cfg.data.registry:
            continue
        for item in spec if isinstance(spec, list) else [spec]:
            path = item if isinstance(item, str) else item.path
            if not Path(path).exists():
                problems.append(f"data.{key}: file '{path}' not found")
    if (cfg.model.template != "auto" and cfg.model.template not in builtin_names()
            and not cfg.model.template.endswith(".jinja")):
        import difflib

        close = difflib.get_close_matches(cfg.model.template, builtin_names(), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        problems.append(f"model.template: unknown template '{cfg.model.template}'{hint}")
    path = cfg.model.path
    if path.startswith(PREFIX) and path[len(PREFIX):] not in BUILTINS:
        problems.append(f"model.path: unknown built-in model '{path}' (see lmforge models)")
    elif not path.startswith(PREFIX) and not Path(path).exists() and "/" not in path.strip("/"):
        problems.append(f"model.path: '{path}' is neither a directory nor a hub id")
    from lmforge.model.chain import problems as chain_problems

    return problems + chain_problems(cfg)  # a run directory as model.path (model/chain.py)


def run(args) -> int:
    from lmforge.config import to_yaml
    from lmforge.errors import ConfigError
    from lmforge.training.args import build_arguments

    cfg = load_run(args)
    problems = check_files(cfg)
    import importlib

    from lmforge.stages import STAGES

    # a stage with its own arguments class (DPOConfig, GRPOConfig, ...) builds it: build_args
    stage = importlib.import_module(STAGES[cfg.stage]) if cfg.stage in STAGES else None
    build = getattr(stage, "build_args", None) or build_arguments
    try:
        build(cfg, has_eval=cfg.data.eval is not None)
    except ConfigError as exc:
        problems += exc.problems
    from lmforge.training import output_dir

    try:
        output_dir.check(cfg)  # holds a run: train.resume or train.overwrite must say what to do
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    if args.print:
        print(to_yaml(cfg), end="")
    print("ok")
    return 0
