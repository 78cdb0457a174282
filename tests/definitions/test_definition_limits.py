"""Limits of a definition, checked at load: each refusal names the file, the check and
the field, and what the loader accepts the database stores (dry run and real sync agree)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Text, cast, func, select

from app.definitions.loader import (
    MAX_FILE_BYTES,
    MAX_SNAPSHOT_BYTES,
    MAX_SOURCE_FILE_CHARS,
    MAX_YAML_DEPTH,
    SQS_MAX_MESSAGE_BYTES,
    DefinitionError,
    load_definitions,
    load_text,
    stored_size,
)
from app.definitions.models import MAX_NAME_CHARS, MAX_TAG_CHARS
from app.execution.runs import RunRequest
from app.pipeline.dispatch import run_request_message
from app.pipeline.sync import sync
from app.pipeline.wire import MAX_MESSAGE_BYTES
from app.storage.db import sessions
from app.storage.models import CheckLocationStateRow, CheckRow, CheckRunRow
from tests.support.checks import http_check
from tests.support.processes import ROOT, synmon_command
from tests.support.settings import make_settings
from tests.support.snapshot_bound import snapshot_ceiling

BILLION_LAUGHS = """\
lol1: &lol1 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]
lol2: &lol2 [*lol1,*lol1,*lol1,*lol1,*lol1,*lol1,*lol1,*lol1,*lol1,*lol1]
lol3: &lol3 [*lol2,*lol2,*lol2,*lol2,*lol2,*lol2,*lol2,*lol2,*lol2,*lol2]
lol4: &lol4 [*lol3,*lol3,*lol3,*lol3,*lol3,*lol3,*lol3,*lol3,*lol3,*lol3]
lol5: &lol5 [*lol4,*lol4,*lol4,*lol4,*lol4,*lol4,*lol4,*lol4,*lol4,*lol4]
lol6: &lol6 [*lol5,*lol5,*lol5,*lol5,*lol5,*lol5,*lol5,*lol5,*lol5,*lol5]
lol7: &lol7 [*lol6,*lol6,*lol6,*lol6,*lol6,*lol6,*lol6,*lol6,*lol6,*lol6]
lol8: &lol8 [*lol7,*lol7,*lol7,*lol7,*lol7,*lol7,*lol7,*lol7,*lol7,*lol7]
lol9: &lol9 [*lol8,*lol8,*lol8,*lol8,*lol8,*lol8,*lol8,*lol8,*lol8,*lol8]
"""
# The same bomb inside a check, where validation and the snapshot would walk it.
BOMB_IN_A_CHECK = (
    "x-bomb:\n"
    + "".join("  " + line + "\n" for line in BILLION_LAUGHS.splitlines())
    + """\
checks:
  - id: laughs
    type: http
    locations: [eu-west-1]
    request: {url: "https://api.example.com/", body: *lol9}
"""
)
MEMORY_LIMIT = 1 << 30  # the child's address space: far below what the bomb expands to


def problems_of(text: str, file: str = "checks.yaml") -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        load_text(text, file, make_settings())
    return [str(problem) for problem in caught.value.problems]


def only_problem(document: dict[str, Any]) -> str:
    (problem,) = problems_of(yaml.safe_dump(document))
    return problem


# ------------------------------------------------------------------ files and YAML
def test_a_file_over_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    checks = yaml.safe_dump({"checks": [http_check()]})
    path.write_text(checks + "#" * (MAX_FILE_BYTES - len(checks)) + "\n")
    with pytest.raises(DefinitionError) as caught:
        load_definitions(path, make_settings())
    (problem,) = caught.value.problems
    assert str(problem) == (
        f"{path}: is {MAX_FILE_BYTES + 1:,} bytes; a definitions file may have 4 MiB at most: "
        "split it into several files"
    )
    path.write_text(checks + "#" * (MAX_FILE_BYTES - len(checks) - 1) + "\n")
    assert [c.id for c in load_definitions(path, make_settings()).checks] == ["api"]


def _bounded_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.mark.processes
@pytest.mark.parametrize("text", [BILLION_LAUGHS, BOMB_IN_A_CHECK], ids=["classic", "in-a-check"])
def test_billion_laughs_is_refused_in_bounded_memory(tmp_path: Path, text: str) -> None:
    """``synmon sync --dry-run`` in a child whose memory is capped at 1 GiB: refused
    with its line, not a MemoryError (nor a machine swapping for minutes)."""
    (tmp_path / "bomb.yaml").write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "sync", "--dry-run", str(tmp_path / "bomb.yaml")],
        cwd=ROOT,
        env={
            **os.environ,
            "SYNMON_DATA_DIR": str(tmp_path / "data"),
            "SYNMON_LOCATIONS": "eu-west-1",
        },
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_bounded_memory,
        check=False,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "MemoryError" not in result.stderr
    assert f"{tmp_path / 'bomb.yaml'}: refused: line " in result.stderr
    assert "more than 1,000,000 nodes (an alias bomb?)" in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &x [1, *x]\n", "refused: line 1, column 11: an alias refers to a node that contains"),
        (
            "[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1),
            f"nested deeper than {MAX_YAML_DEPTH} levels",
        ),
    ],
)
def test_recursive_aliases_and_deep_nesting(text: str, message: str) -> None:
    (problem,) = problems_of(text)
    assert problem.startswith("checks.yaml: refused: line 1") and message in problem


def test_aliases_and_merge_keys_within_the_limit_still_work() -> None:
    text = """\
x-defaults: &defaults
  type: http
  locations: [eu-west-1]
checks:
  - <<: *defaults
    id: a
    request: {url: "https://api.example.com/a"}
  - <<: *defaults
    id: b
    request: {url: "https://api.example.com/b"}
"""
    with pytest.raises(DefinitionError) as caught:
        load_text(text, "c.yaml", make_settings())
    # Only the unknown top-level key: the aliases themselves are fine.
    assert [str(p) for p in caught.value.problems] == [
        "c.yaml: x-defaults: unknown top-level field"
    ]


# ------------------------------------------------------------------ the snapshot
def test_the_snapshot_limit_is_computed_from_the_real_message() -> None:
    ceiling = snapshot_ceiling()
    # Two base64 layers (4/3 each) leave at most 9/16 of the SQS limit for the
    # snapshot; the envelopes take a little more.
    assert SQS_MAX_MESSAGE_BYTES * 9 // 16 - 4096 < ceiling < SQS_MAX_MESSAGE_BYTES * 9 // 16
    assert ceiling < MAX_MESSAGE_BYTES
    assert ceiling > MAX_SNAPSHOT_BYTES


def test_a_check_over_the_snapshot_limit() -> None:
    problem = only_problem(
        {
            "checks": [
                http_check(
                    request={"url": "https://api.example.com/", "body": "x" * MAX_SNAPSHOT_BYTES}
                )
            ]
        }
    )
    assert problem.startswith("checks.yaml: check 'api': its definition takes ")
    assert f"a check may take {MAX_SNAPSHOT_BYTES:,}" in problem
    assert "an SQS message carries 256 KiB with its envelopes" in problem


def test_escapes_and_exponents_count_as_the_database_prints_them() -> None:
    """1e+300 is 6 bytes in YAML and 301 in Postgres's jsonb: 450 of them are refused
    although the YAML is small."""
    numbers = [1.0e300] * 450
    problem = only_problem(
        {"checks": [http_check(request={"url": "https://x.example/", "body": numbers})]}
    )
    assert "its definition takes" in problem


def padded_check(target_size: int, settings_locations: list[str]) -> dict[str, Any]:
    """A check whose stored snapshot is exactly ``target_size`` bytes, full of what
    each database writes differently: non-ASCII text, control characters, exponents."""
    check = http_check(
        name="Größe 😀",
        locations=settings_locations,
        request={
            "url": "https://api.example.com/",
            "body": {
                "mix": "é😀\u0001\u007f" * 500,
                "numbers": [1.5e-07, 1.0e300, 60.0],
                "pad": "",
            },
        },
    )
    (parsed,) = load_text(yaml.safe_dump({"checks": [check]}), "c.yaml", make_settings()).checks
    missing = target_size - stored_size(parsed.snapshot())
    assert missing >= 0
    check["request"]["body"]["pad"] = "p" * missing
    return check


def test_a_check_at_the_limit_fits_the_database_and_an_sqs_message(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(SYNMON_DATABASE_URL=database_url)
    check = padded_check(MAX_SNAPSHOT_BYTES, ["eu-west-1"])
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"checks": [check]}, allow_unicode=True))
    definitions = load_definitions(tmp_path, settings)
    (parsed,) = definitions.checks
    assert stored_size(parsed.snapshot()) == MAX_SNAPSHOT_BYTES
    with sessions(database_url)() as session:
        sync(session, definitions)
    with sessions(database_url)() as session:
        stored = session.scalar(select(cast(CheckRow.definition, Text)))
    assert stored is not None
    # The measure is the text the database gives back, at most (exactly, on SQLite).
    assert len(stored.encode()) <= stored_size(parsed.snapshot())
    # ... and the dispatcher splices that text into a message SQS accepts.
    request = RunRequest(
        run_id=uuid.uuid4(),
        check=parsed.snapshot(),
        location="eu-west-1",
        scheduled_at=datetime.now(UTC),
    )
    message = run_request_message(request, settings, check_json=stored)
    assert len(message.body) <= SQS_MAX_MESSAGE_BYTES


# ------------------------------------------------------------------ fields
@pytest.mark.parametrize(
    ("check", "field", "message"),
    [
        (http_check(id="api\n"), "id", "an id is 1-64 lower-case"),
        (http_check(id="api\r"), "id", "an id is 1-64 lower-case"),
        (http_check(id="a\x00b"), "id", "an id is 1-64 lower-case"),
        (http_check(name="n" * (MAX_NAME_CHARS + 1)), "name", "at most 200 characters"),
        (http_check(name="line\nbreak"), "name", "contains the control character '\\n'"),
        (http_check(name="esc\x1b[31m"), "name", "control character '\\x1b'"),
        (http_check(name="next\u0085line"), "name", "control character '\\x85'"),
        (http_check(name="para\u2029graph"), "name", "control character '\\u2029'"),
        (http_check(tags=["t" * (MAX_TAG_CHARS + 1)]), "tags[0]", "at most 64 characters"),
        (http_check(tags=["prod\n"]), "tags", "tag 'prod\\n' contains the control character"),
        (http_check(locations=["eu-west-1\n"]), "locations", "is not a location"),
        (http_check(locations=["x" * 41]), "locations", "1-40 lower-case letters"),
        (http_check(locations=["EU"]), "locations", "is not a location"),
        (
            http_check(request={"url": "https://x.example/", "headers": {"X-A": "a\r\nX-B: b"}}),
            "request.headers",
            "header 'X-A': contains the control character '\\r'",
        ),
        (
            http_check(request={"url": "https://x.example/\n"}),
            "request.url",
            "control character",
        ),
        (
            http_check(
                assertions=[{"source": "text_body", "comparison": "matches", "target": r"(a)\1"}]
            ),
            "assertions[0]",
            "target is not a valid regular expression (RE2 syntax): invalid escape sequence",
        ),
        (
            http_check(
                assertions=[{"source": "text_body", "comparison": "matches", "target": "(?=x)"}]
            ),
            "assertions[0]",
            "RE2 syntax): invalid perl operator: (?=",
        ),
        (
            http_check(
                assertions=[{"source": "status_code", "comparison": "equals", "target": 1e400}]
            ),
            "assertions[0].target",
            "inf is not a finite number: the database cannot store it",
        ),
        (
            http_check(request={"url": "https://x.example/", "body": {"deep": [float("nan")]}}),
            "request.body.deep[0]",
            "nan is not a finite number",
        ),
        (
            http_check(request={"url": "https://x.example/", "body": {"k": "a\x00b"}}),
            "request.body.k",
            "contains a NUL character (U+0000), which the database cannot store",
        ),
        (http_check(frequency=10**400), "frequency", "a duration must be a finite number"),
    ],
)
def test_field_limits(check: dict[str, Any], field: str, message: str) -> None:
    problem = only_problem({"checks": [check]})
    assert problem.startswith(f"checks.yaml: check {check['id']!r}: {field}: "), problem
    assert message in problem, problem


def browser_check(*steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "flow",
        "type": "browser",
        "locations": ["eu-west-1"],
        "browser": {"steps": [{"goto": "https://app.example.com/"}, *steps]},
    }


@pytest.mark.parametrize(
    ("step", "field", "message"),
    [
        ({"assert_url": {"matches": "(?<=a)b"}}, "browser.steps[1]", "RE2 syntax"),
        ({"assert_text": {"selector": "h1", "matches": r"(x)\1"}}, "browser.steps[1]", "RE2"),
        ({"fill": {"selector": "#q", "value": "a\x00"}}, "browser.steps[1].value", "NUL"),
        ({"set_header": {"name": "X-A", "value": "a\nb"}}, "browser.steps[1].value", "control"),
    ],
)
def test_browser_step_limits(step: dict[str, Any], field: str, message: str) -> None:
    problem = only_problem({"checks": [browser_check(step)]})
    assert problem.startswith(f"checks.yaml: check 'flow': {field}: "), problem
    assert message in problem, problem


def test_channel_values_the_database_cannot_store() -> None:
    channels = [
        {
            "id": "hook",
            "type": "webhook",
            "url": "https://hooks.example.com/",
            "headers": {"X-Token": "a\x00"},
        },
        {"id": "mail", "type": "email", "to": ["ops\x00@example.com"]},
    ]
    problems = problems_of(yaml.safe_dump({"channels": channels}))
    assert problems == [
        "checks.yaml: channel 'hook': headers: header 'X-Token': contains the control "
        "character '\\x00'",
        "checks.yaml: channel 'mail': 'ops\\x00@example.com' is not an email address",
    ]


def column_length(column: Any) -> int | None:
    length: int | None = getattr(column.type, "length", None)
    return length


def test_the_limits_are_the_columns() -> None:
    """The model's limits are the lengths of the columns the values land in."""
    assert column_length(CheckRow.__table__.c.name) == MAX_NAME_CHARS
    assert column_length(CheckRow.__table__.c.source_file) == MAX_SOURCE_FILE_CHARS
    assert column_length(CheckRow.__table__.c.id) == 64
    assert column_length(CheckRunRow.__table__.c.location) == 40
    assert column_length(CheckLocationStateRow.__table__.c.location) == 40


# ------------------------------------------------------------------ dry run == sync
def long_path(tmp_path: Path, length: int) -> Path:
    """A file whose path has exactly ``length`` characters."""
    folder = tmp_path / ("d" * 200) / ("e" * 200)
    rest = length - len(str(folder)) - 1 - len(".yaml")
    assert rest > 0
    folder.mkdir(parents=True)
    return folder / ("f" * rest + ".yaml")


HOSTILE: dict[str, str] = {
    "name of 200 characters, not ASCII": yaml.safe_dump(
        {"checks": [http_check(name="é" * 200)]}, allow_unicode=True
    ),
    "name of 201 characters": yaml.safe_dump({"checks": [http_check(name="é" * 201)]}),
    "NUL in a body": 'checks: [{id: api, type: http, locations: [eu-west-1], request: {url: "https://x.example/", body: "a\\0b"}}]\n',
    "NUL in a header name": 'checks: [{id: api, type: http, locations: [eu-west-1], request: {url: "https://x.example/", headers: {"X\\0": v}}}]\n',
    "NUL in a body key": 'checks: [{id: api, type: http, locations: [eu-west-1], request: {url: "https://x.example/", body: {"k\\0": 1}}}]\n',
    "surrogate in a body": 'checks: [{id: api, type: http, locations: [eu-west-1], request: {url: "https://x.example/", body: "\\ud800"}}]\n',
    "NUL from binary": "checks: [{id: api, type: http, locations: [eu-west-1], request: {url: 'https://x.example/', body: {b: !!binary AA==}}}]\n",
    "binary that is not UTF-8": "checks: [{id: api, type: http, locations: [eu-west-1], request: {url: 'https://x.example/', body: {b: !!binary /w==}}}]\n",
    "NaN target": "checks: [{id: api, type: http, locations: [eu-west-1], request: {url: 'https://x.example/'}, assertions: [{source: status_code, comparison: equals, target: .nan}]}]\n",
    "infinity in a body": "checks: [{id: api, type: http, locations: [eu-west-1], request: {url: 'https://x.example/', body: [-.inf]}}]\n",
    "a 4,000-digit integer": "checks: [{id: api, type: http, locations: [eu-west-1], request: {url: 'https://x.example/'}, assertions: [{source: status_code, comparison: equals, target: 1"
    + "0" * 4000
    + "}]}]\n",
    "1e300 and tiny floats": "checks: [{id: api, type: http, locations: [eu-west-1], request: {url: 'https://x.example/', body: [1.0e+300, 1.5e-300, -0.0]}}]\n",
    "dates and sets in a body": "checks: [{id: api, type: http, locations: [eu-west-1], request: {url: 'https://x.example/', body: {at: 2026-12-01, when: 2026-12-01 10:00:00, s: !!set {a, b}}}}]\n",
    "deep body": "checks: [{id: api, type: http, locations: [eu-west-1], request: {url: 'https://x.example/', body: "
    + "[" * 55
    + "]" * 55
    + "}}]\n",
    "emoji and DEL": 'checks: [{id: api, type: http, name: "😀 ok", locations: [eu-west-1], request: {url: "https://x.example/", body: "\\x7f😀"}}]\n',
    "location of 40 characters": "checks: [{id: api, type: http, locations: ["
    + "l" * 40
    + "], request: {url: 'https://x.example/'}}]\n",
}


def verdict(path: Path, database_url: str, dry_run: bool) -> str:
    """'ok', or the problems: what ``synmon sync`` (with ``--dry-run`` or not) reports."""
    settings = make_settings(
        SYNMON_DATABASE_URL=database_url, SYNMON_LOCATIONS="eu-west-1," + "l" * 40
    )
    try:
        definitions = load_definitions(path, settings)
    except DefinitionError as exc:
        return "\n".join(str(p) for p in exc.problems)
    with sessions(database_url)() as session:
        sync(session, definitions, dry_run=dry_run)
    return "ok"


def test_dry_run_and_sync_agree_on_hostile_definitions(database_url: str, tmp_path: Path) -> None:
    files: dict[str, Path] = {}
    for index, (label, text) in enumerate(HOSTILE.items()):
        path = tmp_path / f"case-{index}.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        files[label] = path
    just_fits = long_path(tmp_path / "fits", MAX_SOURCE_FILE_CHARS)
    just_fits.write_text(yaml.safe_dump({"checks": [http_check()]}))
    files["path of 500 characters"] = just_fits
    too_long = long_path(tmp_path / "long", MAX_SOURCE_FILE_CHARS + 1)
    too_long.write_text(yaml.safe_dump({"checks": [http_check()]}))
    files["path of 501 characters"] = too_long

    verdicts: dict[str, str] = {}
    for label, path in files.items():
        dry = verdict(path, database_url, dry_run=True)
        # The real sync must reach the same verdict: the database refuses nothing the
        # loader accepted (a refusal would raise here, failing the test).
        real = verdict(path, database_url, dry_run=False)
        assert dry == real, label
        if real == "ok":
            with sessions(database_url)() as session:
                assert session.scalar(select(func.count()).select_from(CheckRow)) == 1, label
        verdicts[label] = "ok" if real == "ok" else real.splitlines()[0].split(": ", 1)[1]
    refused = {label for label, v in verdicts.items() if v != "ok"}
    assert refused == {
        "name of 201 characters",
        "NUL in a body",
        "NUL in a header name",
        "NUL in a body key",
        "surrogate in a body",
        "NUL from binary",
        "binary that is not UTF-8",
        "NaN target",
        "infinity in a body",
        "path of 501 characters",
    }, verdicts
    assert verdicts["path of 501 characters"] == (
        "its path has 501 characters; the database keeps 500 at most (checks.source_file)"
    )


@pytest.mark.processes
def test_the_command_agrees_with_itself(database_url: str, tmp_path: Path) -> None:
    """The same through ``synmon sync``: a hostile file is refused alike with and
    without ``--dry-run``, on SQLite and on Postgres."""
    (tmp_path / "c.yaml").write_text(HOSTILE["NUL in a body"])
    env = {
        **os.environ,
        "SYNMON_DATABASE_URL": database_url,
        "SYNMON_LOCATIONS": "eu-west-1",
        "SYNMON_DATA_DIR": str(tmp_path / "data"),
    }
    outcomes = []
    for args in (["--dry-run"], []):
        result = synmon_command("sync", *args, str(tmp_path / "c.yaml"), env=env)
        outcomes.append((result.returncode, result.stderr))
    assert outcomes[0] == outcomes[1]
    code, stderr = outcomes[0]
    assert code == 1
    assert f"{tmp_path / 'c.yaml'}: check 'api': request.body: contains a NUL" in stderr
