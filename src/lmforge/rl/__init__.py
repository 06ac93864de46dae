"""lmforge's own PPO (trl 1.x has none): pure tensor functions (``functional``), rollouts
(``rollout``), the update step (``ppo``), the run loop with logging (``driver``) and checkpoints
(``state``). The stage that wires models and data to it is ``lmforge.stages.ppo``."""
