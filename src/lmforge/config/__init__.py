"""Typed run configuration: ``load(...)`` returns one frozen ``RunConfig``."""

from lmforge.config.loader import compose, load, to_yaml, validate
from lmforge.config.run import RunConfig

__all__ = ["RunConfig", "compose", "load", "to_yaml", "validate"]
