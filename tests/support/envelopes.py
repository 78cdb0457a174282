"""Reading back what synmon puts on SQS."""

from __future__ import annotations

import base64
import json
from typing import Any


def envelope_of(body: str) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(body)))


def run_request_of(body: str) -> Any:
    """The run request inside a Celery task message body as kombu's SQS transport sends it."""
    envelope = envelope_of(body)
    args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    return args[0]
