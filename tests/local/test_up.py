"""``synmon up`` from a clone, as the README says: results of the example checks within a minute."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.support.processes import ROOT, free_port, kill_group, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.processes]


@contextmanager
def synmon_up(
    tmp_path: Path, *paths: str, **settings: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`synmon up examples/checks` from the clone, as `make up` runs it, with its own
    data folder and status page port and ``settings`` added; yields it and the port
    once its banner is out. Killed with its whole group at the end."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNMON_")}
    env.update(
        SYNMON_DATA_DIR=str(tmp_path / "data"), SYNMON_WEB_PORT=str(port), PYTHONUNBUFFERED="1"
    )
    env.update(settings)
    with (tmp_path / "up.log").open("wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "up", *(paths or ("examples/checks",))],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(
                lambda: "synmon is up." in (tmp_path / "up.log").read_text(),
                60,
                0.5,
                "the banner",
            )
            yield up, port
        finally:
            kill_group(up)


ADMIN_LINE = re.compile(r"sign in as (\S+), password (\S+) \(made now")


def signed_in(tmp_path: Path, port: int) -> requests.Session:
    """A client signed in to the web product as the admin that the first `synmon up` on
    this data folder made and printed (kept beside the log for the starts after it)."""
    saved = tmp_path / "admin-login"
    found = ADMIN_LINE.search((tmp_path / "up.log").read_text())
    if found:
        saved.write_text(f"{found.group(1)}\n{found.group(2)}\n")
    name, password = saved.read_text().split()
    client = requests.Session()
    base = f"http://127.0.0.1:{port}"
    form = client.get(base + "/login", timeout=10)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    answer = client.post(
        base + "/login",
        data={"name": name, "password": password, "csrf_token": csrf},
        timeout=10,
        allow_redirects=False,
    )
    assert answer.status_code == 303, answer.text[:300]
    return client


def passed_runs(web: requests.Session, port: int, check_id: str) -> list[dict[str, Any]]:
    runs = web.get(f"http://127.0.0.1:{port}/api/runs?since=5m", timeout=10).json()
    return [r for r in runs if r["check_id"] == check_id and r["status"] == "passed"]


def api_checks(web: requests.Session, port: int) -> dict[str, dict[str, Any]]:
    checks = web.get(f"http://127.0.0.1:{port}/api/checks", timeout=10).json()
    return {check["id"]: check for check in checks}


def test_synmon_up_runs_the_example_checks_and_stops_cleanly(tmp_path: Path) -> None:
    with synmon_up(tmp_path) as (up, port):
        banner = (tmp_path / "up.log").read_text()
        assert f"dashboard     http://127.0.0.1:{port}/" in banner
        # The dashboard asks for a sign-in: the admin made on this first start can.
        assert requests.get(f"http://127.0.0.1:{port}/api/runs", timeout=10).status_code == 401
        web = signed_in(tmp_path, port)
        started = time.monotonic()
        runs = wait_until(
            lambda: passed_runs(web, port, "demo-api-health"),
            60,
            1,
            "a passed run of the example check",
        )
        assert time.monotonic() - started < 60 and runs
        children = psutil.Process(up.pid).children(recursive=True)
        commands = [" ".join(child.cmdline()) for child in children]
        # An HTTP and a browser worker (threads: no pool processes), beat, ingest and Flower.
        for role in ("-k http", "-k browser", "app.cli beat", "app.cli ingest", " flower"):
            assert any(role in command for command in commands), (role, commands)
        flower_url = re.search(r"Flower +(http://\S+)", banner).group(1)  # type: ignore[union-attr]
        login = re.search(r"login (\S+):(\S+)", banner).groups()  # type: ignore[union-attr]

        def flower_workers() -> dict[str, object]:
            try:
                return dict(
                    requests.get(
                        flower_url + "api/workers?refresh=1", auth=login, timeout=10
                    ).json()
                )
            except (requests.RequestException, ValueError):
                return {}

        workers = wait_until(lambda: len(flower_workers()) >= 2, 60, 1, "Flower lists the workers")
        assert workers and requests.get(flower_url + "api/workers", timeout=10).status_code == 401
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=90) == 0
        assert "stopped." in (tmp_path / "up.log").read_text()
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def test_synmon_up_without_chromium_says_so_and_runs_the_http_checks(tmp_path: Path) -> None:
    missing = tmp_path / "no-chromium-here"
    with synmon_up(tmp_path, SYNMON_CHROMIUM_PATH=str(missing)) as (up, port):
        output = (tmp_path / "up.log").read_text()
        line = (
            f"browser checks are disabled: SYNMON_CHROMIUM_PATH={missing} is not an executable"
            " file (synced disabled: demo-login); to enable them, install Chromium"
        )
        assert f"synmon up: {line}" in output  # said once when it syncs ...
        assert f"  browsers      {line}" in output  # ... and again in the banner
        assert "set SYNMON_CHROMIUM_PATH to a Chromium executable" in output

        # The browser check is listed, disabled, so the dispatcher sends no run for it.
        web = signed_in(tmp_path, port)
        checks = api_checks(web, port)
        assert checks["demo-login"]["enabled"] is False
        assert checks["demo-api-health"]["enabled"] is True
        assert wait_until(
            lambda: passed_runs(web, port, "demo-api-health"), 60, 1, "a passed HTTP run"
        )
        commands = [" ".join(c.cmdline()) for c in psutil.Process(up.pid).children(recursive=False)]
        assert any(" worker " in c and " http" in c for c in commands)
        assert not [c for c in commands if " browser" in c]
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=90) == 0

    # With Chromium back, the next synmon up on the same data runs it again.
    (tmp_path / "up.log").unlink()
    with synmon_up(tmp_path) as (up, port):
        output = (tmp_path / "up.log").read_text()
        assert "update check demo-login (enabled)" in output
        assert "browser checks are disabled" not in output
        # The admin exists already: none is made, and the first one's login still works.
        assert "made now" not in output
        assert api_checks(signed_in(tmp_path, port), port)["demo-login"]["enabled"] is True
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=90) == 0


SYSTEM_DEPS = ROOT / "scripts" / "system-deps"


@contextmanager
def tools(*names: str) -> Iterator[Path]:
    """A PATH folder holding only ``names`` of this machine's commands: what system-deps
    runs, without chromium or apt-get. World-readable, so that another user can use it."""
    with tempfile.TemporaryDirectory(prefix="synmon-path-") as folder:
        path = Path(folder)
        path.chmod(0o755)
        for name in names:
            found = shutil.which(name)
            assert found, name
            (path / name).symlink_to(found)
        yield path


def system_deps(
    path: Path, *args: str, user: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    argv = [str(SYSTEM_DEPS), *args]
    if user is not None:
        argv = [shutil.which("runuser") or "runuser", "-u", user, "--", *argv]
    return subprocess.run(
        argv,
        env={"PATH": str(path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_system_deps_optional_without_root_says_browser_checks_are_disabled() -> None:
    with tools("bash", "id", "dpkg") as path:
        result = system_deps(path, "--optional", user="nobody")
        assert result.returncode == 0, result.stderr
        assert (
            "synmon: browser checks are disabled: Chromium is not installed and this user is"
            " not root, so it cannot be installed from here." in result.stderr
        )
        assert "to enable them, install it (sudo apt-get install -y chromium" in result.stderr
        assert "or set SYNMON_CHROMIUM_PATH to a Chromium executable" in result.stderr
        # make test still stops there: its browser tests need Chromium.
        strict = system_deps(path, user="nobody")
        assert strict.returncode == 1
        assert "synmon needs these Debian packages: chromium" in strict.stderr


def test_system_deps_optional_without_apt_get_says_browser_checks_are_disabled() -> None:
    with tools("bash", "id", "dpkg") as path:
        result = system_deps(path, "--optional")
        assert result.returncode == 0, result.stderr
        assert (
            "browser checks are disabled: Chromium is not installed and this machine has no"
            " apt-get (not Debian or Ubuntu)." in result.stderr
        )
        assert system_deps(path).returncode == 1


def test_system_deps_optional_takes_the_chromium_synmon_up_is_told_to_use() -> None:
    with tools("bash", "id", "dpkg") as path:
        chromium = shutil.which("chromium")
        assert chromium
        result = system_deps(path, "--optional", SYNMON_CHROMIUM_PATH=chromium)
        assert result.returncode == 0
        assert "browser checks are disabled" not in result.stderr
        assert "installing" not in result.stderr
        assert system_deps(path, "--no-such-option").returncode == 2


def test_make_up_runs_system_deps_optionally_before_synmon_up() -> None:
    planned = subprocess.run(
        ["make", "-n", "up"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    deps = planned.index("scripts/system-deps --optional")
    assert planned[deps + 1].endswith("synmon up examples/checks")


def test_synmon_up_syncs_every_path_it_is_given(tmp_path: Path) -> None:
    # Each path synced on its own would remove what the paths before it defined.
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "more.yaml").write_text(
        "checks:\n"
        "  - id: extra\n    type: http\n    enabled: false\n"
        "    request: {url: 'http://{{DEMO_HOST}}/api/health'}\n"
    )
    with synmon_up(tmp_path, "examples/checks", str(extra)) as (_, port):
        checks = api_checks(signed_in(tmp_path, port), port)
        assert {"demo-api-health", "extra"} <= set(checks)
