"""lmforge validate: every problem ``train`` would stop on during set-up, in one report, without
loading a model.

The schema and cross-section checks run first; when they fail, the keys at fault are set aside
(their defaults apply) and every later check still runs on the rest: files, templates, built-ins
and hub ids in the local cache; the first rows of each source (registry entries included) in a
format the stage reads; tracker names and the packages of the optional features in use; the
transformers/trl arguments object with ``train.extra``; the output directory; adapter module
names against the model's own (config.json on the meta device). Checks of a key that was set
aside are skipped. Exit 0 only when nothing is found (commands/_preflight.py has the checks).
"""

from __future__ import annotations

from lmforge.commands._runargs import add_run_arguments

HELP = "check a run config (all problems at once) without loading a model"


def add_arguments(parser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--print", action="store_true", help="print the resolved config")


def check_files(cfg) -> list[str]:
    """Data files, the template, the model source (built-in, directory, cached hub id) and
    chaining from a run directory."""
    from lmforge.commands import _preflight

    found, _ = _preflight.model_source(cfg)
    return _preflight.files(cfg, model_ok=True) + found


def check_all(cfg, dropped: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Every check after the schema; ``dropped``: keys that failed it (checks of them skip)."""
    from lmforge.commands import _preflight as pf
    from lmforge.errors import LmforgeError

    def near(*keys: str) -> bool:  # one of these keys failed the schema
        return bool(dropped & set(keys))

    model_ok = not near("model", "model.path")
    model_dir = None
    problems: list[str] = []

    def run(check, *args):
        try:
            return check(*args)
        except LmforgeError as exc:
            return pf.lines_of(exc)

    problems += run(pf.files, cfg, model_ok)
    if model_ok:
        found, model_dir = pf.model_source(cfg)
        problems += found
    if not near("stage", "data", "data.train", "data.eval", "data.format", "data.columns",
                "data.registry", "data.system"):
        problems += run(pf.rows, cfg)
    problems += run(pf.packages, cfg)
    problems += run(pf.arguments, cfg)
    if not near("adapter", "adapter.type", "adapter.target_modules", "adapter.modules_to_save",
                "adapter.trainable_modules"):
        problems += run(pf.modules, cfg, model_dir if model_ok else None)
    out: list[str] = []
    for p in problems:  # one line per problem, in check order
        if p not in out:
            out.append(p)
    return out


def warnings_of(cfg) -> list[str]:
    """What is valid but worth a warning: a config that trains but cannot learn (an adapter on a
    random base)."""
    from lmforge.model.adapters import cannot_learn

    problem = cannot_learn(cfg.adapter, cfg.model.path)
    return [f"warning: {problem}"] if problem else []


def problems_of(tree: dict):
    """(RunConfig or None, every problem, its hint, warnings): all the checks of ``validate`` on
    a composed config tree (the web UI's Validate button runs exactly these)."""
    from lmforge.config.loader import validate_partial

    cfg, error, dropped = validate_partial(tree)
    problems = list(error.problems) if error else []
    warnings: list[str] = []
    if cfg is not None:
        problems += [p for p in check_all(cfg, dropped) if p not in problems]
        warnings = warnings_of(cfg)
    return cfg, problems, error.hint if error else None, warnings


def run(args) -> int:
    import sys

    from lmforge.config import to_yaml
    from lmforge.config.loader import compose
    from lmforge.errors import ConfigError

    ov = args.overrides
    tree = compose(args.config, args.data_config, args.model_config, ov.merged, ov.data, ov.model)
    cfg, problems, hint, warnings = problems_of(tree)
    for line in warnings:
        print(line, file=sys.stderr)
    if problems:
        raise ConfigError(problems, hint)
    if args.print:
        print(to_yaml(cfg), end="")
    print("ok")
    return 0
