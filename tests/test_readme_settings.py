"""The README's configuration table names exactly the variables config/settings.py reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
VARIABLE = re.compile(r"SYNMON_[A-Z0-9_]*[A-Z0-9]")
PREFIXES = {"SYNMON_VAR", "SYNMON_PUBLIC_VAR"}  # SYNMON_VAR_<NAME>: a family, not one


def configuration_table() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("| `SYNMON_"))


def test_the_readme_table_and_the_settings_agree() -> None:
    code = "\n".join(
        line.split("#", 1)[0] for line in (ROOT / "config" / "settings.py").read_text().splitlines()
    )
    read = set(VARIABLE.findall(code)) - PREFIXES
    listed = set(VARIABLE.findall(configuration_table())) - PREFIXES
    assert sorted(read - listed) == [], "settings the README's table does not list"
    assert sorted(listed - read) == [], "README rows for settings nothing reads"
