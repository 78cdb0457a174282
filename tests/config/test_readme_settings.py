"""The README's configuration table is the one config/settings.py renders from its
declarations, and every declared setting is one that something reads."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from config.settings import DECLARED, PUBLIC_PREFIX, SECRET_PREFIX, settings_table
from tests.support.processes import ROOT

VARIABLE = re.compile(r"SYNMON_[A-Z0-9_]*[A-Z0-9]")


def readme_table() -> str:
    """The table of the README's "Configuration" section, as written."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return "".join(line + "\n" for line in section.splitlines() if line.startswith("|"))


def test_the_readme_table_is_the_rendered_declarations() -> None:
    # On a difference: paste `python -m config.settings --markdown-table` into the README.
    assert readme_table() == settings_table()


@pytest.mark.processes
def test_the_table_renders_from_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "config.settings", "--markdown-table"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout == settings_table()


def test_every_variable_settings_py_names_is_declared() -> None:
    """No variable is read beside the declarations (each is read in one place)."""
    code = "\n".join(
        line.split("#", 1)[0] for line in (ROOT / "config" / "settings.py").read_text().splitlines()
    )
    declared = {item.setting.var for item in DECLARED}
    prefixes = {SECRET_PREFIX.rstrip("_"), PUBLIC_PREFIX.rstrip("_")}
    assert sorted(set(VARIABLE.findall(code)) - declared - prefixes) == []
    assert len(declared) == len(DECLARED), "a variable declared twice"


def test_every_declared_setting_is_read_somewhere() -> None:
    """A setting that nothing reads is removed, not documented."""
    sources = "\n".join(
        path.read_text()
        for folder in ("app", "tasks", "config")
        for path in (ROOT / folder).rglob("*.py")
        if path != ROOT / "config" / "settings.py"
    )
    unread = [item.attr for item in DECLARED if not re.search(rf"\.{item.attr}\b", sources)]
    assert unread == []
