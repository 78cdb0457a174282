"""synmon installed the way its Docker image installs it, and run from the installed copy.

The image's build stage copies a few paths of the checkout and runs ``pip install
--no-compile .`` (deploy/docker/Dockerfile). An editable install, which every other test
uses, hides what such an install leaves out: a folder without ``__init__.py``, a data
file that package_data does not name, a dependency that install_requires forgets. So
this test copies what the Dockerfile copies, builds and installs it the same way into a
new virtualenv outside the checkout, and runs synmon from there.

No network: the project's build backend and dependencies come from the environment
running the tests. The new virtualenv sees the dependencies through a ``.pth`` line
naming this environment's site-packages; a plain path line does not run the ``.pth``
files inside it, so the editable install's finder stays off and the checkout cannot be
imported. Every third-party import in the installed code must be declared, since the
image has nothing else.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement

from app.storage.models import RUNS_TABLE
from tests.support import packaging_probe
from tests.support.processes import ROOT

# 15-35 s on two cores: a wheel build, a pip install and several synmon processes.
pytestmark = [pytest.mark.slow, pytest.mark.processes]

PACKAGES = ["app", "tasks", "config"]
# The site-packages of the environment running the tests: the new virtualenv's
# dependencies, and (as tests/support/packaging_probe.py checks) nothing of the checkout.
DEPENDENCIES = Path(sysconfig.get_paths()["purelib"])
BUILD_CACHE = {"__pycache__"}


@dataclass(frozen=True)
class BuildStage:
    copies: list[tuple[list[str], str]]  # (sources in the build context, destination)
    workdir: str
    pip_install_args: list[str]


def build_stage(dockerfile: Path) -> BuildStage:
    """The COPY and ``pip install`` steps of the Dockerfile's first (build) stage."""
    instructions = [
        (i["instruction"], i["value"])
        for i in DockerfileParser(path=str(dockerfile)).structure
        if i["instruction"] != "COMMENT"
    ]
    starts = [n for n, (kind, _) in enumerate(instructions) if kind == "FROM"]
    stage = instructions[starts[0] : starts[1] if len(starts) > 1 else None]
    copies, workdir, pip_args = [], "/", None
    for kind, value in stage:
        if kind == "WORKDIR":
            workdir = value
        elif kind == "COPY":
            *sources, destination = shlex.split(value)
            assert not any(s.startswith("--") for s in sources), f"unexpected COPY {value}"
            copies.append((sources, destination))
        elif kind == "RUN" and (match := re.search(r"/pip install ([^&;|]+)", value)):
            pip_args = shlex.split(match.group(1))
    assert pip_args is not None, f"{dockerfile}: the build stage runs no pip install"
    return BuildStage(copies, workdir, pip_args)


def copy_build_context(root: Path, stage: BuildStage, into: Path) -> Path:
    """What the build stage's COPY lines put into its WORKDIR, from the checkout at root."""
    source = into / "image"
    source.mkdir(parents=True)
    ignore = shutil.ignore_patterns(*BUILD_CACHE)  # .dockerignore leaves these out too
    for sources, destination in stage.copies:
        target = (source / Path(stage.workdir).relative_to("/") / destination).resolve()
        for name in sources:
            path = root / name
            if path.is_dir():
                shutil.copytree(path, target, ignore=ignore)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)
    return source / Path(stage.workdir).relative_to("/")


def require_build_backend(source: Path) -> None:
    """No build isolation (it would download the backend): this environment's must fit."""
    pyproject = tomllib.loads((source / "pyproject.toml").read_text())
    for text in pyproject["build-system"]["requires"]:
        requirement = Requirement(text)
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            installed = None
        if installed is None or not requirement.specifier.contains(installed, prereleases=True):
            pytest.fail(
                f"pyproject.toml's build backend needs {text}, this environment has "
                f"{installed or 'none'}: install synmon[test]"
            )


def pip(*args: str, cwd: Path) -> None:
    # --no-index: pip's configuration names remote indexes; this test reaches none.
    argv = [sys.executable, "-m", "pip", *args, "--no-deps", "--no-index", "--no-build-isolation"]
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{shlex.join(argv)}:\n{result.stdout}{result.stderr}"


@dataclass(frozen=True)
class Installed:
    root: Path  # the checkout it was built from
    wheel: Path
    venv: Path
    site_packages: Path
    workdir: Path  # outside the checkout; commands run here
    env: dict[str, str]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def synmon(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "synmon"), *args],
            check=False,
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def probe(self) -> dict[str, Any]:
        """tests/support/packaging_probe.py run by the new virtualenv's interpreter."""
        script = self.workdir / "packaging_probe.py"
        shutil.copy(packaging_probe.__file__, script)
        result = subprocess.run(
            [str(self.python), "-I", str(script), *PACKAGES],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))


def install(root: Path, into: Path) -> Installed:
    """Build and install the checkout at root as the Dockerfile does, into a new venv."""
    stage = build_stage(root / "deploy" / "docker" / "Dockerfile")
    source = copy_build_context(root, stage, into)
    require_build_backend(source)
    wheels = into / "wheels"
    pip("wheel", "--wheel-dir", str(wheels), ".", cwd=source)
    [wheel] = wheels.glob("synmon-*.whl")
    venv = into / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The Dockerfile's own arguments. `pip install .` builds the same wheel first; it is
    # built here by this environment's backend, which the new virtualenv does not hold.
    assert "." in stage.pip_install_args
    arguments = [str(wheel) if a == "." else a for a in stage.pip_install_args]
    pip("--python", str(venv / "bin" / "python"), "install", *arguments, cwd=source)
    [site_packages] = (venv / "lib").glob("python3*/site-packages")
    # Written after the install, so that pip never sees the editable synmon in there.
    (site_packages / "synmon-dependencies.pth").write_text(f"{DEPENDENCIES}\n")
    workdir = into / "work"
    workdir.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SYNMON_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(
        SYNMON_DATA_DIR=str(into / "data"),
        SYNMON_DATABASE_URL=f"sqlite:///{into / 'synmon.sqlite'}",
        # app.celery.flower refuses to load without a side channel, as Flower needs one.
        SYNMON_EVENTS_URL=f"filesystem://{into / 'events'}",
    )
    return Installed(root, wheel, venv, site_packages, workdir, env)


def checkout_modules(root: Path) -> list[str]:
    """Every module name the checkout's packages hold, from their .py files."""
    names = []
    for package in PACKAGES:
        for file in (root / package).rglob("*.py"):
            parts = file.relative_to(root).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


def checkout_files(root: Path) -> list[str]:
    return sorted(
        str(path.relative_to(root))
        for package in PACKAGES
        for path in (root / package).rglob("*")
        if path.is_file() and not BUILD_CACHE & set(path.parts)
    )


# Run by the installed interpreter: the application's pages, rendered from its own files.
WEB_PROBE = """
import json, re
from fastapi.testclient import TestClient
from config.settings import get_settings
import app.web.app as web
client = TestClient(web.create_app(get_settings()))
login = client.get("/login")
csrf = re.search('name="csrf_token" value="([^"]+)"', login.text).group(1)
client.post("/login", data={"name": "ann", "password": "installed password", "csrf_token": csrf})
print(json.dumps({
    "login": login.status_code,
    "htmx": client.get("/static/vendor/htmx-2.0.11.min.js").status_code,
    "checks": client.get("/").status_code,
    "templates": str(web.HERE / "templates"),
}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return install(ROOT, tmp_path_factory.mktemp("packaging"))


def test_the_wheel_holds_every_file_of_the_packages(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    migrations = "app/storage/migrations"
    assert f"{migrations}/env.py" in names
    assert f"{migrations}/script.py.mako" in names  # `alembic revision` needs it
    versions = sorted((installed.root / migrations / "versions").glob("0*.py"))
    assert versions
    for file in versions:
        assert f"{migrations}/versions/{file.name}" in names
    assert not [f for f in checkout_files(installed.root) if f not in names]
    # The web product's pages and static files, vendored libraries with their licences.
    web = installed.root / "app" / "web"
    for folder in ("templates", "static"):
        files = [
            p for p in (web / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ]
        assert files, folder
        for path in files:
            assert str(path.relative_to(installed.root)) in names, path
    for vendored in (
        "htmx-2.0.11.min.js",
        "htmx-LICENSE.txt",
        "uPlot-1.6.32.iife.min.js",
        "uPlot-1.6.32.min.css",
        "uPlot-LICENSE.txt",
        "swagger-ui-5.35.0-bundle.js",
        "swagger-ui-LICENSE.txt",
    ):
        assert f"app/web/static/vendor/{vendored}" in names, vendored
    assert "app/web/templates/base.html" in names


@pytest.fixture(scope="module")
def probe(installed: Installed) -> dict[str, Any]:
    return installed.probe()


def test_every_module_imports_from_the_installed_packages(
    installed: Installed, probe: dict[str, Any]
) -> None:
    # A folder that pip left out (no __init__.py, say) is missing here.
    assert sorted(probe["modules"]) == checkout_modules(installed.root)
    assert probe["errors"] == {}
    for package in PACKAGES:
        assert Path(probe["files"][package]).is_relative_to(installed.site_packages)
    from_checkout = [
        f"{name}: {file}"
        for name, file in probe["files"].items()
        if Path(file).is_relative_to(installed.root)
        and not Path(file).is_relative_to(DEPENDENCIES)
        and Path(file).name != "packaging_probe.py"
    ]
    assert from_checkout == []


def test_every_third_party_import_is_declared(probe: dict[str, Any]) -> None:
    assert probe["undeclared"] == {}


def test_synmon_runs_from_the_installed_package(installed: Installed) -> None:
    help_ = installed.synmon("--help")
    assert help_.returncode == 0, help_.stderr
    for command in ("up", "migrate", "sync", "worker", "ingest"):
        assert re.search(rf"^\s+{command}\s", help_.stdout, re.MULTILINE)

    migrated = installed.synmon("migrate")
    assert migrated.returncode == 0, migrated.stderr
    migrations = ScriptDirectory(str(installed.site_packages / "app/storage/migrations"))
    database = installed.env["SYNMON_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(database) as connection:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
        [(revision,)] = connection.execute("SELECT version_num FROM alembic_version")
    assert {"checks", RUNS_TABLE, "alembic_version"} <= tables
    assert revision == migrations.get_current_head()
    assert f"database at revision {revision}" in migrated.stdout

    # The web product from the installed copy: its templates and static files are found
    # there, not in the checkout.
    added = subprocess.run(
        [str(installed.venv / "bin" / "synmon"), "users", "add", "ann", "--role", "admin",
         "--password-stdin"],
        input="installed password\n", cwd=installed.workdir, env=installed.env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    served = subprocess.run(
        [str(installed.python), "-I", "-c", WEB_PROBE],
        cwd=installed.workdir, env=installed.env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert served.returncode == 0, served.stderr
    pages = json.loads(served.stdout)
    assert pages["login"] == 200 and pages["htmx"] == 200 and pages["checks"] == 200
    assert Path(pages["templates"]).is_relative_to(installed.site_packages)

    planned = installed.synmon("sync", str(installed.root / "examples" / "checks"), "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert "create check demo-api-health" in planned.stdout
    assert "planned (dry run, nothing applied)" in planned.stdout
