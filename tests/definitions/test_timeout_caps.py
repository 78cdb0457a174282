"""The longest timeout a check may have comes from the settings (SYNMON_HTTP_MAX_TIMEOUT,
SYNMON_BROWSER_MAX_TIMEOUT), in the models as in the loader, with the messages of before."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.definitions.loader import DefinitionError, load_text
from app.definitions.models import Check
from config.settings import reset_settings
from tests.support.processes import ROOT
from tests.support.settings import make_settings


def http_check(timeout: str) -> dict[str, object]:
    return {
        "id": "api",
        "type": "http",
        "locations": ["eu-west-1"],
        "request": {"url": "https://api.example.com/health", "timeout": timeout},
    }


def browser_check(timeout: str) -> dict[str, object]:
    return {
        "id": "flow",
        "type": "browser",
        "locations": ["eu-west-1"],
        "browser": {"timeout": timeout, "steps": [{"goto": "https://app.example.com"}]},
    }


def installation(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, str]:
    """``env`` in this process's environment, as ``synmon sync`` runs with it."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    return env


def problems(check: dict[str, object], env: dict[str, str]) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        load_text(yaml.safe_dump({"checks": [check]}), "c.yaml", make_settings(**env))
    return [str(problem) for problem in caught.value.problems]


def test_the_default_caps_keep_their_message() -> None:
    assert problems(http_check("31s"), {}) == [
        "c.yaml: check 'api': request.timeout: must be more than 0 and at most 30s"
    ]
    assert problems(browser_check("241s"), {}) == [
        "c.yaml: check 'flow': browser.timeout: must be more than 0 and at most 240s"
    ]


def test_a_raised_maximum_lets_longer_checks_through(monkeypatch: pytest.MonkeyPatch) -> None:
    env = installation(monkeypatch, SYNMON_HTTP_MAX_TIMEOUT="60", SYNMON_BROWSER_MAX_TIMEOUT="600")
    document = yaml.safe_dump({"checks": [http_check("45s"), browser_check("5m")]})
    http, browser = load_text(document, "c.yaml", make_settings(**env)).checks
    assert http.timeout == 45 and browser.timeout == 300
    # The worker validates the snapshot again, with the settings of its own process.
    assert Check.model_validate(http.model_dump(mode="json")).timeout == 45
    assert problems(http_check("61s"), env) == [
        "c.yaml: check 'api': request.timeout: must be more than 0 and at most 60s"
    ]


def test_a_lowered_maximum_is_the_loaders_to_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    env = installation(monkeypatch, SYNMON_HTTP_MAX_TIMEOUT="10")
    assert problems(http_check("20s"), env) == [
        "c.yaml: check 'api': request.timeout: exceeds this installation's maximum of 10s"
    ]
    # A worker configured lower still runs a snapshot that an earlier sync accepted.
    snapshot = Check.model_validate(http_check("20s"))
    assert snapshot.timeout == 20


@pytest.mark.processes
def test_synmon_sync_accepts_what_the_installation_allows(tmp_path: Path) -> None:
    (tmp_path / "checks.yaml").write_text(yaml.safe_dump({"checks": [http_check("45s")]}))
    env = {
        **os.environ,
        "SYNMON_DATA_DIR": str(tmp_path / "data"),
        "SYNMON_LOCATIONS": "eu-west-1",
    }

    def dry_run(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", "sync", "--dry-run", str(tmp_path)],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    refused = dry_run()
    assert refused.returncode == 1
    assert "request.timeout: must be more than 0 and at most 30s" in refused.stderr
    accepted = dry_run(SYNMON_HTTP_MAX_TIMEOUT="60")
    assert accepted.returncode == 0, accepted.stderr
