"""The largest check snapshot whose run request still fits one SQS message.

Computed from the message the dispatcher really builds, so that a test can hold the
loader's fixed limit (``MAX_SNAPSHOT_BYTES``) below it.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

from app.definitions.loader import SQS_MAX_MESSAGE_BYTES

# Worst cases of what a run request carries besides the snapshot.
MAX_QUEUE_NAME = 80  # SQS's limit on a queue name
MAX_LOCATION = 40  # check_runs.location
MAX_HOST_NAME = 253  # the envelope's "origin" names the dispatcher's host
LONGEST_FLOAT = -2.2250738585072014e-308  # the longest repr a time limit can have


def snapshot_ceiling() -> int:
    """The largest ``stored_size`` of a snapshot whose run request fits one SQS message.

    Computed from the message the dispatcher really builds (``celery_task_body``
    around ``run_request_json``), with every other field at its longest, in every
    message version this release writes; and within what a worker accepts
    (``MAX_MESSAGE_BYTES``).
    """
    from app.execution.runs import RunRequest
    from app.pipeline.sqs import celery_task_body
    from app.pipeline.wire import MAX_MESSAGE_BYTES, run_request_json
    from config.celery import RUN_TASKS
    from config.settings import SUPPORTED_MESSAGE_VERSIONS

    moment = datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    request = RunRequest(
        run_id=uuid.uuid4(),
        check={},
        location="x" * MAX_LOCATION,
        scheduled_at=moment,
        attempt=100,
        root_run_id=uuid.uuid4(),
        trigger="schedule",
        dispatched_at=moment,
    )
    ceilings = []
    for version in SUPPORTED_MESSAGE_VERSIONS:
        argument = run_request_json(request, version, "{}")
        body = celery_task_body(
            max(RUN_TASKS.values(), key=len),
            argument,
            "q" * MAX_QUEUE_NAME,
            task_id=str(request.run_id),
            time_limits=(LONGEST_FLOAT, LONGEST_FLOAT),
        )
        envelope_text = base64.b64decode(body)
        envelope = json.loads(envelope_text)
        inner = base64.b64decode(envelope["body"])
        host = str(envelope["headers"].get("origin", "")).partition("@")[2]
        # Everything in the envelope but its base64 body, with the longest host name.
        outer = len(envelope_text) - len(envelope["body"]) + MAX_HOST_NAME - len(host)
        # base64 makes 4 characters of 3 bytes: the outer layer may hold this much JSON,
        # of which the inner body (base64 again) may take the rest.
        envelope_room = SQS_MAX_MESSAGE_BYTES // 4 * 3
        inner_room = (envelope_room - outer) // 4 * 3
        ceilings.append(inner_room - (len(inner) - len("{}")))
        ceilings.append(MAX_MESSAGE_BYTES - (len(argument) - len("{}")))
    return min(ceilings)
