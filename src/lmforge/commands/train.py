"""lmforge train: run a stage from a config (``--nproc N``: under torchrun, N processes)."""

from __future__ import annotations

from lmforge.commands._runargs import add_run_arguments, load_run

HELP = "train a model (stage pt, sft, ...) from a run config"


def add_arguments(parser) -> None:
    from lmforge.distributed.launch import add_launch_arguments

    add_run_arguments(parser)
    add_launch_arguments(parser)


def run(args) -> int:
    from lmforge.distributed import launch, ranks
    from lmforge.utils.logs import setup

    setup()
    cfg = load_run(args)  # a bad config fails here, before any process is started
    if launch.wants_launch(args):
        return launch.relaunch(args)
    from lmforge import stages

    result = stages.run(cfg)
    if not ranks.is_main():
        return 0
    from rich.console import Console

    console = Console()
    shown = {k: v for k, v in result.metrics.items()
             if k in ("train_loss", "eval_loss", "train_runtime", "global_step")}
    console.print(f"[bold green]done[/]: {cfg.stage} run saved in [bold]{result.output_dir}[/]")
    console.print("  " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in shown.items()))
    return 0
