"""A custom reward function for the tiny PPO/GRPO examples, referenced from the configs as
``examples/tiny/rewards.py:digit_share`` (a file path; an importable ``module:function`` works
too). The signature is trl's: completions plus the data's columns as keyword arguments."""


def digit_share(completions, **columns):
    """The share of characters that are digits: a dense signal a random tiny model can climb
    (its completions already hold some digits) on the way to the exact answer."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]
