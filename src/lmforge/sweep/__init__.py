"""Hyperparameter sweeps with Optuna (extra ``sweep``): ``lmforge sweep CONFIG --space FILE``.

- ``space``: the search space file, keyed by the same dotted paths as command-line overrides;
- ``study``: the SQLite-backed study in the sweep directory (resumable, locked to one driver);
- ``trial``: one trial = one normal run in ``<dir>/trial_<n>`` with a pruning callback;
- ``runner``: the driver (in-process trials, or ``--jobs N`` worker processes), resume of trials
  a crash left running;
- ``report``: summary table, ``sweep_summary.json``, ``best_config.yaml``, ``sweep.png``.
"""
