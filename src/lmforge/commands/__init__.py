"""One module per CLI command (see lmforge.cli)."""
