"""lmforge convert: translate another tool's training config into an lmforge run config.

Sources: a LLaMA-Factory train YAML; the seeds' CausalLM-Lit data + model YAML pair (with its own
``--D.``/``--M.`` overrides), LLMs-Tool's ``config.py`` (read with ``ast``, never run) and
transformers' ``run_clm.py`` flags (after ``--``). Every key that has no lmforge equivalent is
listed with why; the names come from one table (config/aliases.py, docs/migration.md)."""

from __future__ import annotations

import sys

HELP = ("convert a LLaMA-Factory, CausalLM-Lit, LLMs-Tool or run_clm config into an lmforge run "
        "config (lists what it cannot map)")


def _source(sub, name: str, text: str):
    p = sub.add_parser(name, help=text, description=text)
    return p


def _output(p) -> None:
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the run config here (default: standard output)")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    lf = _source(sub, "llamafactory", "a LLaMA-Factory train YAML (llamafactory-cli train)")
    lf.add_argument("file", help="the LLaMA-Factory YAML file")
    _output(lf)
    lit = _source(sub, "causallm-lit", "a CausalLM-Lit data YAML + model YAML pair; its "
                  "--D.key=value / --M.key=value overrides edit them first")
    lit.add_argument("data_file", metavar="DATA.yaml", help="the data config (datamodule, "
                     "metrics)")
    lit.add_argument("model_file", metavar="MODEL.yaml", help="the model config (pretrain, "
                     "peft, quant, optim, ...)")
    lit.set_defaults(_overrides=True)
    _output(lit)
    tool = _source(sub, "llms-tool", "LLMs-Tool's config.py: its mode and dataclass defaults, "
                   "read statically (the file is never run)")
    tool.add_argument("file", metavar="config.py")
    _output(tool)
    clm = _source(sub, "run-clm", "transformers' run_clm.py flags (and the LoRA seed's "
                  "--use_peft, --lora_rank, --target_modules, --max_source_length ...), after --")
    _output(clm)
    clm.add_argument("flags", nargs="*", metavar="-- FLAGS", help="the run_clm command line")


def _report(conv, out) -> None:
    for key, what in conv.notes:
        print(f"note: {key}: {what}", file=out)
    if conv.unmapped:
        print(f"not mapped ({len(conv.unmapped)}):", file=out)
        for key, why in conv.unmapped:
            print(f"  {key}: {why}", file=out)


def _convert(args):
    """(Conversion, what it came from)."""
    from lmforge.config.loader import read_yaml
    from lmforge.errors import ConfigError

    ov = args.overrides
    if args.source == "causallm-lit":
        from lmforge.config.loader import parse_override, set_path
        from lmforge.convert import causallm_lit

        if ov.merged:
            raise ConfigError("plain key=value overrides edit lmforge configs; CausalLM-Lit's "
                              "are --D.key=value (data file) and --M.key=value (model file)")
        data = read_yaml(args.data_file, "CausalLM-Lit data config")
        model = read_yaml(args.model_file, "CausalLM-Lit model config")
        for tree, texts, origin in ((data, ov.data, "--D."), (model, ov.model, "--M.")):
            for text in texts:
                set_path(tree, *parse_override(text), origin=origin)
        return causallm_lit.convert(data, model), f"{args.data_file} + {args.model_file}"
    if args.source == "llms-tool":
        from lmforge.convert import llms_tool

        return llms_tool.convert(*llms_tool.read(args.file)), args.file
    if args.source == "run-clm":
        from lmforge.convert import run_clm

        flags = [f for f in args.flags if f != "--"]
        if not flags:
            raise ConfigError("no run_clm flags given", "lmforge convert run-clm -- "
                              "--model_name_or_path M --train_file F --use_peft --lora_rank 8")
        return run_clm.convert(run_clm.parse(flags)), "run_clm flags"
    from lmforge.convert import llamafactory

    return llamafactory.convert(read_yaml(args.file, "LLaMA-Factory config")), args.file


def run(args) -> int:
    from pathlib import Path

    import yaml

    conv, origin = _convert(args)
    text = (f"# converted from {origin} by lmforge convert {args.source}\n"
            + yaml.safe_dump(conv.ordered(), sort_keys=False, allow_unicode=True))
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}; check it with: lmforge validate {args.output}",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    _report(conv, sys.stderr)
    return 0
