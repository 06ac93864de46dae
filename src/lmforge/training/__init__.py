"""The runtime every stage shares (DESIGN.md, "training/"): argument objects (``args``), trainer
construction, one path for every trainer (``trainer``), checkpoints + manifest (``checkpoints``),
numerical and resource faults (``faults``, ``resource_faults``), callbacks, trained-token counting,
fast loss and length grouping, the run's final save and report (``common``), and what the
trl-based stages share (``preference_common``). ``stages/`` holds the recipes only."""
