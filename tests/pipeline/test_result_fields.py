"""RunResult's fields written once: the wire versions, the stored row, the web's documents
and a result from an observation all derive from them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import pytest

from app.execution.outcome import OBSERVED, REQUESTED, Observation
from app.execution.runs import DETAIL, SUMMARY, RunRequest, RunResult, result_fields
from app.pipeline import wire
from app.pipeline.ingest import CLIPPED, run_row
from app.pipeline.wire.base import Layout, Wire
from app.pipeline.wire.v2 import ResultV2
from app.storage.models import CheckRunRow
from app.web.documents import DETAIL_FIELDS, RUN_FIELDS, run_document
from config.errors import SynmonError
from tests.support.results import run_result, stored_run

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
# Another zone, so that the encoders' conversion to UTC shows in the bytes.
PARIS = datetime(2026, 11, 27, 13, 0, tzinfo=timezone(timedelta(hours=1)))
CHECK = {"id": "api", "type": "http", "request": {"url": "https://x.example"}}
IDS = [uuid.UUID(int=i) for i in range(6)]
REQUEST = RunRequest(IDS[2], CHECK, "eu", PARIS, 3, IDS[3], "retry", PARIS)
RESULT = RunResult(
    IDS[2], "api", "browser", "eu", "failed", NOW, PARIS, NOW, 2.0, 2, IDS[5], 3,
    {"a": 1.0}, [{"p": False}], "boom", "network", {"s": 500}, [{"k": "x"}], "1.2", "h", 1,
    "retry",
)  # fmt: skip
U2, U3, U5 = (f"00000000-0000-0000-0000-00000000000{i}" for i in (2, 3, 5))
T = "2026-11-27T12:00:00+00:00"
# The bytes the single-module wire.py wrote before the versions became modules.
GOLDEN_REQUESTS = {
    1: f'{{"v":1,"run_id":"{U2}","check":{{"id":"api","type":"http","request":{{"url":'
    f'"https://x.example"}}}},"location":"eu","scheduled_at":"{T}","attempt":3,'
    f'"root_run_id":"{U3}","dispatched_at":"{T}"}}',
    2: f'{{"v":2,"run_id":"{U2}","check":{{"id":"api","type":"http","request":{{"url":'
    f'"https://x.example"}}}},"location":"eu","schedule":{{"scheduled_at":"{T}",'
    f'"dispatched_at":"{T}","trigger":"retry"}},"attempt":{{"number":3,"root_run_id":"{U3}"}}}}',
}
GOLDEN_RESULTS = {
    1: f'{{"v":1,"run_id":"{U2}","check_id":"api","kind":"browser","location":"eu",'
    f'"status":"failed","scheduled_at":"{T}","started_at":"{T}","finished_at":"{T}",'
    f'"duration_ms":2.0,"attempt":2,"root_run_id":"{U5}","deliveries":3,"timings":{{"a":1.0}},'
    f'"assertions":[{{"p":false}}],"error":"boom","error_kind":"network","response":{{"s":500}},'
    f'"artifacts":[{{"k":"x"}}],"worker_version":"1.2","worker_host":"h"}}',
    2: f'{{"v":2,"run_id":"{U2}","check_id":"api","kind":"browser","location":"eu",'
    f'"status":"failed","timing":{{"scheduled_at":"{T}","started_at":"{T}","finished_at":"{T}",'
    f'"duration_ms":2.0,"phases":{{"a":1.0}}}},"attempt":{{"number":2,"root_run_id":"{U5}",'
    f'"deliveries":3,"trigger":"retry"}},"assertions":[{{"p":false}}],"failure":{{"message":'
    f'"boom","kind":"network"}},"response":{{"s":500}},"artifacts":[{{"k":"x"}}],'
    f'"worker":{{"version":"1.2","host":"h"}}}}',
}


@pytest.mark.parametrize("version", [1, 2])
def test_the_wire_bytes_are_those_of_before(version: int) -> None:
    assert wire.run_request_json(REQUEST, version) == GOLDEN_REQUESTS[version]
    assert wire.result_body(RESULT, version) == GOLDEN_RESULTS[version]


def test_a_result_without_a_failure_has_a_null_failure_in_version_2() -> None:
    encoded = wire.encode_result(run_result(error_kind="network"), 2)
    assert encoded["failure"] is None
    assert encoded["worker"] == {"version": "", "host": ""}  # not nullable: always an object


def test_message_errors_are_permanent_synmon_errors_and_value_errors() -> None:
    with pytest.raises(wire.MessageError) as caught:
        wire.parse_body("{")
    assert isinstance(caught.value, SynmonError) and caught.value.permanent
    assert isinstance(caught.value, ValueError)


def test_an_unhashable_version_is_poison() -> None:
    with pytest.raises(wire.MessageError, match=r"unknown message version \[1\]"):
        wire.decode_result({"v": [1]})


def test_a_layout_refuses_a_field_that_does_not_exist() -> None:
    with pytest.raises(TypeError, match=r"timing\.phasez"):
        Layout(ResultV2, RunResult, {"timing.phasez": "timings"})


# ------------------------------------------------------------ a version is one module
class RunRequestV3(Wire):
    v: Literal[3]
    run_id: uuid.UUID
    check: dict[str, Any]
    location: str
    scheduled_at: datetime
    attempt: int = 1
    root_run_id: uuid.UUID | None = None
    trigger: str | None = None
    dispatched_at: datetime | None = None


class ResultV3(Wire):
    v: Literal[3]
    run_id: uuid.UUID
    check_id: str
    kind: str
    region: str  # a rename, as a new version might make
    status: str
    scheduled_at: datetime
    started_at: datetime
    finished_at: datetime
    duration_ms: float


class FakeV3:
    """What a version 3 module would hold, as a class standing in for the module."""

    VERSION = 3
    REQUEST = Layout(RunRequestV3, RunRequest)
    RESULT = Layout(ResultV3, RunResult, {"region": "location"})

    @staticmethod
    def encode_run_request(request: RunRequest) -> dict[str, Any]:
        return FakeV3.REQUEST.encode(request)

    @staticmethod
    def decode_run_request(raw: dict[str, Any]) -> RunRequest:
        return RunRequest(**FakeV3.REQUEST.decode(RunRequestV3.model_validate(raw)))

    @staticmethod
    def encode_result(result: RunResult) -> dict[str, Any]:
        return FakeV3.RESULT.encode(result)

    @staticmethod
    def decode_result(raw: dict[str, Any]) -> RunResult:
        values = FakeV3.RESULT.decode(ResultV3.model_validate(raw))
        return RunResult(**values, message_version=3)


def test_a_new_version_is_its_module_and_the_versions_config_supports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(wire.VERSIONS, 3, FakeV3)
    monkeypatch.setattr(wire, "SUPPORTED_MESSAGE_VERSIONS", (2, 3))
    encoded = wire.encode_result(RESULT, 3)
    assert encoded["v"] == 3 and encoded["region"] == "eu" and "location" not in encoded
    decoded = wire.decode_result(wire.parse_body(wire.result_body(RESULT, 3)))
    assert (decoded.location, decoded.message_version) == ("eu", 3)
    assert wire.decode_run_request(wire.parse_body(wire.run_request_json(REQUEST, 3))) == REQUEST
    with pytest.raises(wire.MessageError, match="this release reads 2, 3"):
        wire.decode_result({"v": 4})
    with pytest.raises(wire.MessageError, match="unknown message version 1"):
        wire.decode_result(wire.encode_result(RESULT, 1))  # a module, but no longer spoken
    with pytest.raises(wire.MessageError, match="region"):
        wire.decode_result({**encoded, "region": None})


# ------------------------------------------------------------ the row and the web
def test_every_result_field_is_a_column_of_the_row() -> None:
    row = run_row(RESULT, True, NOW)
    assert set(row) == {*result_fields(), "final", "ingested_at"}
    assert set(row) <= set(CheckRunRow.__table__.columns.keys())
    assert row["root_run_id"] == RESULT.root
    alone = run_result()  # without a root: the row names the run itself
    assert run_row(alone, False, NOW)["root_run_id"] == alone.run_id


def test_a_field_added_to_run_result_reaches_the_row() -> None:
    @dataclass
    class Extended(RunResult):
        region_group: str = field(default="emea", metadata=SUMMARY)

    row = run_row(Extended(**{f.name: getattr(RESULT, f.name) for f in fields(RESULT)}), True, NOW)
    assert row["region_group"] == "emea"


def test_worker_texts_are_clipped_to_their_columns() -> None:
    assert CLIPPED == {"worker_version": 64, "worker_host": 255}
    row = run_row(run_result(worker_version="v" * 100, worker_host="h" * 300), True, NOW)
    assert (len(row["worker_version"]), len(row["worker_host"])) == (64, 255)


def test_the_web_shows_what_run_result_says() -> None:
    assert set(RUN_FIELDS) == {*result_fields("summary"), "final"}
    assert set(DETAIL_FIELDS) == set(result_fields("detail"))
    assert not set(result_fields("summary")) & set(result_fields("detail"))
    document = run_document(stored_run(worker_host="w1"), full=True)
    assert list(document) == [*RUN_FIELDS, *DETAIL_FIELDS]
    assert document["worker_host"] == "w1"


def test_the_view_metadata_is_one_of_two() -> None:
    views = {f.metadata.get("view") for f in fields(RunResult)}
    assert views == {SUMMARY["view"], DETAIL["view"], None}


# ------------------------------------------------------------ observation -> result
def test_everything_an_observation_saw_reaches_the_result() -> None:
    # ``started`` is a perf_counter reading, meaningful only inside the worker.
    assert {f.name for f in fields(Observation)} - set(OBSERVED) == {"started"}
    assert set(REQUESTED) == {
        "run_id",
        "location",
        "scheduled_at",
        "attempt",
        "root_run_id",
        "trigger",
    }
