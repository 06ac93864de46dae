"""transformers ``TrainerCallback`` objects driven by lmforge's own PPO loop (rl/driver.py), so the
callbacks given to ``stages.run(cfg, callbacks=...)`` work for stage ppo as for the Trainer stages.

The loop fires the events it has, with the Trainer's meaning: ``on_train_begin``/``on_train_end``,
``on_step_begin`` (``state.global_step``: the iterations done so far) and ``on_step_end`` around
every PPO iteration, ``on_evaluate`` with the held-out metrics, ``on_log`` with every logged entry,
``on_save`` after each checkpoint. Of the ``TrainerControl`` a callback returns, ``should_save``
(a checkpoint at this iteration) and ``should_training_stop`` (stop after it) are honoured; in a
multi-process run a decision taken on any process is taken on all. A callback overriding an event
this loop has not (optimizer steps, epochs, prediction steps) is refused up front with a
ConfigError, rather than silently never called.
"""

from __future__ import annotations

from transformers import TrainerCallback, TrainerControl, TrainerState

from lmforge.errors import ConfigError

FIRED = ("on_init_end", "on_train_begin", "on_train_end", "on_step_begin", "on_step_end",
         "on_evaluate", "on_log", "on_save")
NOT_FIRED = ("on_epoch_begin", "on_epoch_end", "on_pre_optimizer_step", "on_optimizer_step",
             "on_substep_end", "on_prediction_step", "on_predict", "on_push_begin")


def unsupported_events(callback) -> list[str]:
    """The events ``callback`` implements that the PPO loop never fires."""
    cls = type(callback)
    return [e for e in NOT_FIRED
            if getattr(cls, e, None) is not getattr(TrainerCallback, e)]


class LoopEvents:
    """Fires the callbacks' events for the PPO loop and keeps the TrainerState they read."""

    def __init__(self, callbacks, args):
        callbacks = list(callbacks)
        refused = {type(c).__name__: unsupported_events(c) for c in callbacks}
        refused = {name: events for name, events in refused.items() if events}
        if refused:
            detail = "; ".join(f"{name} ({', '.join(ev)})" for name, ev in refused.items())
            raise ConfigError(f"stage ppo runs lmforge's own PPO loop, which has no such events "
                              f"for these callbacks: {detail}", hint="use only the events "
                              f"{', '.join(FIRED)} with stage ppo")
        self.callbacks, self.args = callbacks, args
        self.state = TrainerState()
        self.control = TrainerControl()
        self.objects: dict = {}
        if callbacks:
            self._fire("on_init_end")

    def _fire(self, event: str, **kwargs) -> TrainerControl:
        for callback in self.callbacks:
            result = getattr(callback, event)(self.args, self.state, self.control,
                                              **self.objects, **kwargs)
            if result is not None:
                self.control = result
        return self.control

    def _agree(self, flag: bool) -> bool:
        """True when any process says so (every process then stops / saves together)."""
        import torch.distributed as dist

        if not (self.callbacks and dist.is_available() and dist.is_initialized()):
            return flag
        import torch

        value = torch.tensor(float(flag), device=self.args.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def begin(self, ppo, total: int, done: int, history: list) -> None:
        from lmforge.rl import parallel

        st = self.state
        st.max_steps, st.global_step, st.log_history = total, done, history
        st.is_world_process_zero = parallel.is_main()
        st.is_local_process_zero = parallel.is_main()
        self.objects = {"model": ppo.policy, "processing_class": ppo.tokenizer,
                        "optimizer": ppo.optimizer, "lr_scheduler": ppo.scheduler}
        self._fire("on_train_begin")

    def step_begin(self) -> None:
        self._fire("on_step_begin")

    def step_end(self, step: int, stats: dict, evaluated: bool) -> None:
        """After iteration ``step`` (its entry already in the history): step end, evaluate, log."""
        self.state.global_step = step
        self._fire("on_step_end")
        if evaluated:
            self._fire("on_evaluate", metrics={k: v for k, v in stats.items()
                                               if k.startswith("eval_")})
        self._fire("on_log", logs=dict(self.state.log_history[-1]))

    def should_save(self) -> bool:
        return self._agree(self.control.should_save)

    def should_stop(self) -> bool:
        return self._agree(self.control.should_training_stop)

    def saved(self) -> None:
        self.control.should_save = False
        self._fire("on_save")

    def end(self) -> None:
        self._fire("on_train_end")
