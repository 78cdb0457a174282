"""The ``synmon`` CLI turns synmon's own errors into a message and their exit code, in
one place (app/cli/errors.py), through a real process as an operator sees it."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from app.cli.errors import shown
from app.definitions.loader import DefinitionError, Problem
from app.definitions.patterns import PatternError
from app.definitions.placeholders import UndefinedVariable
from app.execution.browser.chromium import BrowserLaunchError
from app.execution.browser.pool import BrowserUnavailable
from app.execution.guard import ForbiddenTarget
from app.pipeline.sqs import SendFailed
from config.errors import RetryableError, SynmonError
from config.settings import ConfigError
from tests.support.processes import free_port, run_in_checkout, synmon_command

# A synmon with two extra commands, each raising what its name says: the only way to
# see an exit code other than 1 or a bug's traceback, which no real command raises.
PROGRAM = textwrap.dedent(
    """
    from app.cli import main
    from config.errors import RetryableError


    class Busy(RetryableError):
        exit_code = 75


    @main.command()
    def busy() -> None:
        raise Busy("the queue did not answer")


    @main.command()
    def bug() -> None:
        raise RuntimeError("not an error synmon expects")


    main()
    """
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SYNMON_ENV": "test",
        "SYNMON_LOCATIONS": "eu-west-1",
        "SYNMON_DATA_DIR": str(tmp_path / "data"),
        # Nothing listens there: the commands below fail before they reach SQS.
        "SYNMON_SQS_ENDPOINT": f"http://127.0.0.1:{free_port()}",
    }


@pytest.mark.processes
def test_a_synmon_error_exits_with_its_message_and_exit_code(env: dict[str, str]) -> None:
    result = run_in_checkout([sys.executable, "-c", PROGRAM, "busy"], env)
    assert result.returncode == 75, result.stderr
    assert result.stderr == "Error: the queue did not answer\n"
    assert result.stdout == ""


@pytest.mark.processes
def test_a_bug_keeps_its_traceback(env: dict[str, str]) -> None:
    result = run_in_checkout([sys.executable, "-c", PROGRAM, "bug"], env)
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "RuntimeError: not an error synmon expects" in result.stderr


@pytest.mark.processes
def test_a_bad_setting_names_the_variable(env: dict[str, str]) -> None:
    result = synmon_command("migrate", env={**env, "SYNMON_ENV": "nope"})
    assert result.returncode == 1
    # The wording is the settings loader's; the CLI adds the prefix and nothing else.
    assert result.stderr.startswith("Error: configuration: SYNMON_ENV")
    assert "'nope'" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.processes
def test_invalid_definitions_are_listed_without_an_error_prefix(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = synmon_command("sync", "--dry-run", str(tmp_path / "missing.yaml"), env=env)
    assert result.returncode == 1
    assert result.stderr == (
        "1 problem(s) in the check definitions:\n"
        f"  {tmp_path / 'missing.yaml'}: no such file or folder\n"
    )


@pytest.mark.processes
def test_an_unknown_queue_is_an_error_not_a_traceback(env: dict[str, str]) -> None:
    result = synmon_command("dlq", "show", "no-such-queue", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: 'no-such-queue' is not a queue of this installation")
    assert "Traceback" not in result.stderr


@pytest.mark.processes
def test_usage_errors_stay_click_s(env: dict[str, str]) -> None:
    result = synmon_command("stats", "--since", "soon", env=env)
    assert result.returncode == 2
    assert "Invalid value for --since" in result.stderr


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (SendFailed("throttled"), True),
        (BrowserLaunchError("Chromium did not start"), True),
        (BrowserUnavailable("no browser"), True),
        (ForbiddenTarget("10.0.0.1", "10.0.0.1", "private"), False),
        (UndefinedVariable("TOKEN"), False),
        (PatternError("bad pattern"), False),
        (DefinitionError([Problem("a.yaml", None, None, "bad")]), False),
    ],
)
def test_synmon_s_errors_say_whether_a_retry_may_help(error: SynmonError, retryable: bool) -> None:
    assert isinstance(error, SynmonError)
    assert isinstance(error, RetryableError) is retryable
    assert error.permanent is not retryable


def test_builtin_bases_stay_for_callers_that_catch_them() -> None:
    assert issubclass(PatternError, ValueError)
    assert issubclass(DefinitionError, ValueError)
    assert issubclass(UndefinedVariable, LookupError)
    assert issubclass(SendFailed, RuntimeError)


def test_only_expected_errors_are_shown() -> None:
    assert shown(RuntimeError("bug")) is None
    assert shown(KeyError("bug")) is None
    assert shown(ConfigError("SYNMON_X: bad")) == ("Error: configuration: SYNMON_X: bad", 1)
    assert shown(SendFailed("throttled")) == ("Error: throttled", 1)
