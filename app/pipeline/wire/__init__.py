"""The JSON messages between synmon's processes, in every version still spoken.

Two kinds of message: a *run request* (dispatcher -> worker) and a *result* (worker ->
ingest). Each carries ``"v"``. Consumers accept the current version and the previous
one, so that during a rolling update old and new processes can read each other;
producers write the version that ``SYNMON_MESSAGE_VERSION`` selects.

Each version is one module (``v1``, ``v2``: its wire models and how they lay out
``RunRequest`` and ``RunResult``), registered in ``VERSIONS``; this module is what is the
same for every version (the size limit, poison detection, dispatch on ``"v"``). Adding a
version is adding its module to ``MODULES``, and raising ``CURRENT_MESSAGE_VERSION`` and
``SUPPORTED_MESSAGE_VERSIONS`` in config/settings.py. Inside synmon every version decodes to the
same ``RunRequest`` and ``RunResult``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Protocol

from pydantic import ValidationError

from app.execution.runs import RunRequest, RunResult
from app.pipeline.wire import v1, v2
from app.pipeline.wire.base import MessageError, Wire
from app.pipeline.wire.v1 import ResultV1, RunRequestV1
from app.pipeline.wire.v2 import (
    Failure,
    RequestAttempt,
    ResultAttempt,
    ResultV2,
    RunRequestV2,
    Schedule,
    Timing,
    Worker,
)
from config.settings import CURRENT_MESSAGE_VERSION, SUPPORTED_MESSAGE_VERSIONS

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MODULES",
    "VERSIONS",
    "Failure",
    "MessageError",
    "RequestAttempt",
    "ResultAttempt",
    "ResultV1",
    "ResultV2",
    "RunRequestV1",
    "RunRequestV2",
    "Schedule",
    "Timing",
    "Wire",
    "WireVersion",
    "Worker",
    "decode_result",
    "decode_run_request",
    "encode_result",
    "encode_run_request",
    "parse_body",
    "result_body",
    "run_request_json",
]

# SQS refuses messages over 256 KiB. A run request carries a check snapshot, a result
# a bounded excerpt; anything near the limit is a bug or an attack, not a check.
MAX_MESSAGE_BYTES = 192 * 1024


class WireVersion(Protocol):
    """What a version module provides. Decoders get a dict whose ``"v"`` is theirs, and
    raise pydantic's ``ValidationError`` for a message they cannot read."""

    VERSION: int

    def encode_run_request(self, request: RunRequest) -> dict[str, Any]: ...

    def decode_run_request(self, raw: dict[str, Any]) -> RunRequest: ...

    def encode_result(self, result: RunResult) -> dict[str, Any]: ...

    def decode_result(self, raw: dict[str, Any]) -> RunResult: ...


MODULES: tuple[WireVersion, ...] = (v1, v2)
# The versions this release reads and writes, by number.
VERSIONS: dict[int, WireVersion] = {module.VERSION: module for module in MODULES}
if missing := set(SUPPORTED_MESSAGE_VERSIONS) - set(VERSIONS):
    raise ImportError(f"config names message versions without a module: {sorted(missing)}")


def _writer(version: int, what: str) -> WireVersion:
    if version not in VERSIONS:
        raise ValueError(f"cannot write {what} of version {version}")
    return VERSIONS[version]


def encode_run_request(
    request: RunRequest, version: int = CURRENT_MESSAGE_VERSION
) -> dict[str, Any]:
    return _writer(version, "run requests").encode_run_request(request)


def run_request_json(
    request: RunRequest, version: int = CURRENT_MESSAGE_VERSION, check_json: str | None = None
) -> str:
    """``encode_run_request`` as compact JSON text.

    ``check_json``, the check definition as the database stores it, is spliced in
    rather than decoded and encoded again: the definition is most of the message, and
    the dispatcher writes thousands of messages a second.
    """
    document = encode_run_request(replace(request, check={}), version)
    text = json.dumps(document, separators=(",", ":"))
    if check_json is None:
        check_json = json.dumps(request.check, separators=(",", ":"))
    # "check" follows "v" and "run_id" (a UUID): its first occurrence is the key.
    return text.replace('"check":{}', '"check":' + check_json, 1)


def _reader(raw: Any) -> WireVersion:
    """The module of the version of ``raw``, once it is known to be small enough to read."""
    if not isinstance(raw, dict):
        raise MessageError(f"expected a JSON object, got {type(raw).__name__}")
    version = raw.get("v")
    # A tuple: "v" may be unhashable, a list say. What is read is what config supports
    # (the current version and the one before), not every module there is.
    if version not in tuple(SUPPORTED_MESSAGE_VERSIONS):
        raise MessageError(
            f"unknown message version {version!r}; this release reads "
            f"{', '.join(map(str, sorted(SUPPORTED_MESSAGE_VERSIONS)))}"
        )
    size = len(json.dumps(raw, separators=(",", ":"), default=str))
    if size > MAX_MESSAGE_BYTES:
        raise MessageError(f"message of {size} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    return VERSIONS[version]


def _invalid(exc: ValidationError) -> MessageError:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "message"
    return MessageError(f"invalid message: {where}: {first['msg']} ({exc.error_count()} error(s))")


def decode_run_request(raw: Any) -> RunRequest:
    """A ``RunRequest`` from a wire dict of any supported version; ``MessageError`` if not."""
    module = _reader(raw)
    try:
        request = module.decode_run_request(raw)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if not isinstance(request.check.get("id"), str) or request.check.get("type") not in (
        "http",
        "browser",
    ):
        raise MessageError("invalid message: check: needs an id and a type of http or browser")
    return request


def encode_result(result: RunResult, version: int = CURRENT_MESSAGE_VERSION) -> dict[str, Any]:
    return _writer(version, "results").encode_result(result)


def decode_result(raw: Any) -> RunResult:
    """A ``RunResult`` from a wire dict of any supported version; ``MessageError`` if not."""
    module = _reader(raw)
    try:
        return module.decode_result(raw)
    except ValidationError as exc:
        raise _invalid(exc) from None


def result_body(result: RunResult, version: int) -> str:
    """The SQS body of a result: compact JSON."""
    return json.dumps(encode_result(result, version), separators=(",", ":"))


def parse_body(body: str | bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"not JSON: {exc}") from None
