"""docs/migration.md's table is the foreign-name table's current rendering, and every lmforge
key it names exists."""

from __future__ import annotations

import re

from lmforge.config.aliases import ALIASES, render_markdown
from tests.conftest import REPO

START = "<!-- generated: lmforge.config.aliases.render_markdown -->\n"
END = "<!-- end generated -->"


def test_migration_table_is_current():
    text = (REPO / "docs/migration.md").read_text(encoding="utf-8")
    table = text.split(START, 1)[1].split(END, 1)[0]
    assert table == render_markdown(), (
        "docs/migration.md is stale: replace the table between its markers with "
        "lmforge.config.aliases.render_markdown()")
    rows = re.findall(r"^\| `([^`]+)` \|", table, re.M)
    assert rows == [a.name for a in ALIASES]


def test_readme_lists_the_convert_command():
    from lmforge.commands import convert

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"| `lmforge convert` | {convert.HELP} |" in readme
