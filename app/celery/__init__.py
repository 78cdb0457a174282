"""The Celery application. ``celery -A app worker -Q ...`` finds it here.

The configuration is built lazily, the first time Celery needs it, because it includes
the queue URLs, which come from SQS.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

from app.celery.config import celery_config
from app.pipeline.queues import all_queues
from config.errors import SynmonError
from config.settings import Settings, get_settings

log = logging.getLogger("synmon.celery")
# sqs:// URLs get synmon's patched SQS transport (app/celery/transport.py); any other URL
# (``celery -A app -b redis://... inspect ping``) gets its own transport, as Celery users
# expect. Registered here, before any connection is made from this app.
TRANSPORT_ALIASES["sqs"] = "app.celery.transport:SynmonSQSTransport"
TASK_MODULES = ["tasks.http", "tasks.browser", "tasks.dispatch", "tasks.prune"]


class QueuesMissing(SynmonError, RuntimeError):
    """A queue of the environment does not exist, or SQS refused the credentials:
    permanent, since neither fixes itself; the message says what to do."""


def resolve_queue_urls(settings: Settings, attempts: int = 30) -> dict[str, str]:
    """URLs of every queue of the environment, waiting for SQS if it is not up yet.

    A queue that does not exist or missing credentials will not fix themselves: those
    stop the process at once, with what to do.
    """
    from botocore.exceptions import ClientError, NoCredentialsError

    from app.pipeline.sqs import queue_urls

    names = [name for spec in all_queues(settings) for name in (spec.name, spec.dead_letter)]
    for attempt in range(1, attempts + 1):
        try:
            return queue_urls(settings).all(names)
        except NoCredentialsError:
            raise QueuesMissing(
                "no AWS credentials for SQS (an instance role, or AWS_* variables)"
            ) from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
                raise QueuesMissing(
                    f"a queue of {settings.sqs_queue_prefix}-{settings.env} does not exist: "
                    "run `synmon queues --create` (local endpoints) or apply deploy/terraform"
                ) from None
            raise
        except Exception as exc:
            if attempt == attempts:
                raise
            log.warning("queues not reachable yet (%s); retrying", exc)
            time.sleep(min(5.0, 0.5 * attempt))
    raise AssertionError("unreachable")


def create_app(settings: Settings | None = None) -> Celery:
    celery_app = Celery("synmon", include=TASK_MODULES)

    def configuration() -> dict[str, Any]:
        current = settings or get_settings()
        return celery_config(current, resolve_queue_urls(current))

    celery_app.add_defaults(configuration)
    from app.celery.side_channel import SideChannelControl
    from app.celery.worker import HealthReporter

    celery_app.steps["consumer"].add(SideChannelControl)
    celery_app.steps["consumer"].add(HealthReporter)
    return celery_app


app = create_app()
