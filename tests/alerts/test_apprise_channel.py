"""Apprise reaches its services from a child process in which every connection goes
through the target guard: a local json:// endpoint and a local SMTP server (mailto://)
receive when their port is allowed, and nothing when it is not; what cannot be vetted
(native desktop and system notifiers, child processes, Unix sockets) is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from time import perf_counter

import pytest

from app.alerts.channels import Apprise
from tests.alerts.support import monitored
from tests.support.notifications import smtp_server
from tests.support.servers import TargetServer, http_target


@pytest.fixture
def hooks() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


def json_channel(hooks: TargetServer, path: str = "/echo") -> dict[str, str]:
    return {
        "id": "chat",
        "type": "apprise",
        "url": f"json://127.0.0.1:{hooks.port}{path}?+X-Token={{{{HOOK_TOKEN}}}}",
    }


def test_apprise_delivers_with_the_secret_filled_in(database_url: str, hooks: TargetServer) -> None:
    check = monitored(
        database_url, [json_channel(hooks)], [hooks.port], SYNMON_VAR_HOOK_TOKEN="s3cret"
    )
    check.run("failed")
    assert check.send() == 1
    (row,) = check.notifications()
    assert row.status == "sent", row.last_error
    (hit,) = hooks.hits
    assert hit["headers"]["X-Token"] == "s3cret"
    body = json.loads(hit["body"])
    (incident,) = check.incidents()
    assert body["type"] == "failure" and body["title"] == "synmon: Check failing"
    assert "API is failing in eu-west-1: connection refused" in body["message"]
    assert f"synmon:api:{incident.opened_by_run}" in body["message"]


def test_apprise_cannot_reach_loopback_by_default(database_url: str, hooks: TargetServer) -> None:
    check = monitored(database_url, [json_channel(hooks)], (), SYNMON_VAR_HOOK_TOKEN="s3cret")
    check.run("failed")
    check.send()
    (row,) = check.notifications()
    assert row.status == "failed"  # permanent: the guard will refuse it again
    assert "loopback addresses are not allowed" in (row.last_error or "")
    assert hooks.hits == []


def test_apprise_email_goes_through_the_guard_too(database_url: str) -> None:
    """mailto:// connects with smtplib, not requests: the guard sees it all the same."""
    with smtp_server() as smtp:
        url = (
            f"mailto://127.0.0.1:{smtp.port}?from=synmon@example.com"
            "&to={{ONCALL}}&mode=insecure"
        )
        channel = {"id": "mail", "type": "apprise", "url": url}
        env = {"SYNMON_PUBLIC_VAR_ONCALL": "oncall@example.com"}
        refused = monitored(database_url, [channel], (), **env)
        refused.run("failed")
        refused.send()
        (row,) = refused.notifications()
        assert row.status == "failed" and "not allowed" in (row.last_error or "")
        assert smtp.messages == []

        allowed = monitored(database_url, [channel], [smtp.port], **env)
        allowed.minute = 5  # after the failure above
        allowed.run("passed")
        allowed.send()
        recovery = allowed.notifications()[-1]
        assert recovery.event == "recovery" and recovery.status == "sent", recovery.last_error
        (message,) = smtp.messages
        assert "oncall@example.com" in message and "API recovered in eu-west-1" in message


def test_an_endpoint_that_fails_is_retried_and_its_secret_not_shown(
    database_url: str, hooks: TargetServer
) -> None:
    check = monitored(
        database_url,
        [json_channel(hooks, "/status/503")],
        [hooks.port],
        SYNMON_VAR_HOOK_TOKEN="s3cret",
    )
    check.run("failed")
    check.send()
    (row,) = check.notifications()
    assert row.status == "pending" and row.last_error
    assert "s3cret" not in row.last_error


def test_a_hanging_endpoint_cannot_hold_the_sender(
    database_url: str, hooks: TargetServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Apprise, "timeout", 1)
    monkeypatch.setattr("app.alerts.channels.apprise.STARTUP_SECONDS", 4)
    check = monitored(
        database_url,
        [json_channel(hooks, "/hang?delay=60")],
        [hooks.port],
        SYNMON_VAR_HOOK_TOKEN="x",
    )
    check.run("failed")
    started = perf_counter()
    check.send()
    assert perf_counter() - started < 15
    (row,) = check.notifications()
    assert row.status == "pending" and row.last_error


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("dbus://{{X}}", "dbus:// notifications cannot go through the target guard"),
        ("syslog://{{X}}", "syslog:// notifications cannot go through the target guard"),
        ("nosuchservice://{{X}}", "Apprise does not know this URL"),
    ],
)
def test_what_cannot_be_vetted_or_understood_fails_for_good(
    database_url: str, url: str, error: str
) -> None:
    check = monitored(
        database_url, [{"id": "odd", "type": "apprise", "url": url}], (), SYNMON_VAR_X="x"
    )
    check.run("failed")
    check.send()
    (row,) = check.notifications()
    assert row.status == "failed" and error in (row.last_error or "")


def test_the_child_refuses_processes_unix_sockets_and_unvetted_datagrams(
    hooks: TargetServer,
) -> None:
    """The audit hook of the child process, in a process of its own as in production
    (a hook cannot be removed once installed)."""
    program = textwrap.dedent(
        f"""
        import ctypes, json, socket, subprocess
        from app.alerts.channels.apprise_child import install_guard, phase
        from app.execution.guard import TargetGuard
        install_guard(TargetGuard(False, ["127.0.0.1:{hooks.port}"]))
        outcomes = {{}}
        def attempt(name, action):
            try:
                action()
                outcomes[name] = "done"
            except PermissionError as exc:
                outcomes[name] = "refused: " + str(exc)
        attempt("process", lambda: subprocess.run(["true"]))
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        attempt("unix", lambda: unix.connect("/run/anything.sock"))
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        attempt("udp", lambda: udp.sendto(b"x", ("127.0.0.1", 514)))
        attempt("other port", lambda: socket.create_connection(("127.0.0.1", 9), timeout=2))
        attempt("allowed", lambda: socket.create_connection(("127.0.0.1", {hooks.port}), timeout=2).close())
        by_name = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        attempt("by name", lambda: by_name.connect(("localhost", {hooks.port})))
        attempt("library before loading", lambda: ctypes.CDLL("libc.so.6"))
        phase.loaded = True
        attempt("library", lambda: ctypes.CDLL("libm.so.6"))
        print(json.dumps(outcomes))
        """
    )
    finished = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, timeout=60, check=True
    )
    outcomes = json.loads(finished.stdout)
    assert outcomes["process"].startswith("refused: subprocess.Popen is not allowed")
    assert outcomes["unix"].startswith("refused: connections of family")
    assert "loopback addresses are not allowed" in outcomes["udp"]
    assert "loopback addresses are not allowed" in outcomes["other port"]
    assert outcomes["allowed"] == "done"
    # Even to an allowed port: a name is resolved again by the connect, so only addresses.
    assert outcomes["by name"].startswith("refused: a connection to a name (localhost)")
    # Importing ctypes opens a library; once the plugin is loaded nothing may.
    assert outcomes["library before loading"] == "done"
    assert outcomes["library"].startswith("refused: ctypes.dlopen is not allowed")
