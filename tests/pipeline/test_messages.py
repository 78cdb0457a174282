"""Run requests and results in both message versions, and poison detection."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from app.execution.runs import RunRequest, RunResult
from app.pipeline.schedule import retry_run_id, scheduled_run_id
from app.pipeline.wire import (
    MAX_MESSAGE_BYTES,
    MessageError,
    decode_result,
    decode_run_request,
    encode_result,
    encode_run_request,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CHECK = {"id": "api", "type": "http", "request": {"url": "https://x.example"}}


def request(**overrides: object) -> RunRequest:
    values: dict[str, object] = {
        "run_id": uuid.uuid4(),
        "check": CHECK,
        "location": "eu-west-1",
        "scheduled_at": NOW,
        "attempt": 2,
        "root_run_id": uuid.uuid4(),
        "trigger": "retry",
        "dispatched_at": NOW,
    }
    values.update(overrides)
    return RunRequest(**values)  # type: ignore[arg-type]


def result(**overrides: object) -> RunResult:
    values: dict[str, object] = {
        "run_id": uuid.uuid4(),
        "check_id": "api",
        "kind": "http",
        "location": "eu-west-1",
        "status": "failed",
        "scheduled_at": NOW,
        "started_at": NOW,
        "finished_at": NOW,
        "duration_ms": 12.5,
        "attempt": 2,
        "root_run_id": uuid.uuid4(),
        "deliveries": 3,
        "timings": {"dns_ms": 1.0},
        "assertions": [{"passed": False}],
        "error": "boom",
        "error_kind": "network",
        "response": {"status_code": 500},
        "worker_version": "1.2",
        "worker_host": "w1",
    }
    values.update(overrides)
    return RunResult(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [1, 2])
def test_run_requests_round_trip(version: int) -> None:
    original = request()
    decoded = decode_run_request(encode_run_request(original, version))
    assert decoded == original


@pytest.mark.parametrize("version", [1, 2])
def test_results_round_trip(version: int) -> None:
    original = result()
    decoded = decode_result(encode_result(original, version))
    original.message_version = version
    assert decoded == original


def test_version_2_is_a_real_change_of_shape() -> None:
    v1, v2 = encode_result(result(), 1), encode_result(result(), 2)
    assert "error" in v1 and "failure" in v2 and "error" not in v2
    assert "timings" in v1 and v2["timing"]["phases"] == v1["timings"]
    assert v2["worker"] == {"version": "1.2", "host": "w1"}
    r1, r2 = encode_run_request(request(), 1), encode_run_request(request(), 2)
    assert isinstance(r1["attempt"], int) and isinstance(r2["attempt"], dict)
    assert "scheduled_at" in r1 and "schedule" in r2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("a string", "expected a JSON object"),
        ({"v": 9, "run_id": "x"}, "unknown message version 9"),
        ({"run_id": "x"}, "unknown message version None"),
        ({"v": 2, "check": CHECK, "location": "l"}, "invalid message"),
        (
            {
                "v": 1,
                "run_id": "not-a-uuid",
                "check": CHECK,
                "location": "l",
                "scheduled_at": "2026-01-01T00:00:00Z",
            },
            "run_id",
        ),
        (
            {
                "v": 1,
                "run_id": str(uuid.uuid4()),
                "check": {"id": "a"},
                "location": "l",
                "scheduled_at": "2026-01-01T00:00:00Z",
            },
            "type of http or browser",
        ),
        (
            {
                "v": 1,
                "run_id": str(uuid.uuid4()),
                "check": {**CHECK, "big": "x" * MAX_MESSAGE_BYTES},
                "location": "l",
                "scheduled_at": "2026-01-01T00:00:00Z",
            },
            "exceeds the limit",
        ),
    ],
)
def test_poison_run_requests(raw: object, message: str) -> None:
    with pytest.raises(MessageError, match=message):
        decode_run_request(raw)


def test_poison_results() -> None:
    with pytest.raises(MessageError, match="status"):
        decode_result({**encode_result(result(), 2), "status": "sideways"})


def test_run_ids_are_deterministic_per_slot() -> None:
    assert scheduled_run_id("a", "l", NOW) == scheduled_run_id("a", "l", NOW)
    assert scheduled_run_id("a", "l", NOW) != scheduled_run_id("a", "m", NOW)
    root = uuid.uuid4()
    assert retry_run_id(root, 2) == retry_run_id(root, 2) != retry_run_id(root, 3)


@pytest.mark.parametrize("version", [1, 2])
def test_run_request_json_splices_the_stored_definition(version: int) -> None:
    import json

    from app.pipeline.wire import run_request_json

    original = request()
    stored = json.dumps(CHECK, indent=1)  # as a database may return it: any JSON text
    spliced = json.loads(run_request_json(original, version, stored))
    assert spliced == json.loads(json.dumps(encode_run_request(original, version)))
    assert decode_run_request(spliced) == original
