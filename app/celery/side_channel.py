"""The side channel: Celery events and remote control over Redis, beside SQS.

SQS carries neither Celery events nor broadcast messages, so on SQS alone Flower sees
no worker and ``celery inspect ping`` gets no reply. With ``SYNMON_EVENTS_URL`` set, a
synmon worker

* sends its events (task received/started/succeeded/failed/retried, worker online,
  heartbeat, offline) through a connection to the side channel: ``SynmonConsumer``
  answers ``connection_for_write`` with it, and in Celery 5.x only the events bootstep
  asks for that connection;
* answers remote-control commands (ping, stats, active, active_queues, ...) from a
  pidbox node that listens on the side channel in a thread of its own, and replies on
  the side channel too (Celery's own Control step would reply through the shared
  producer pool, which points at SQS).

Tasks keep flowing through SQS. This relies on Celery internals (the consumer's
bootsteps and ``celery.worker.control.Panel``): Celery is pinned, and
``tests/celery/test_side_channel.py`` fails the day an upgrade breaks it.

The side channel is a Redis URL, or ``filesystem:///folder``: kombu's file transport,
which needs no server and serves processes on one machine (``synmon up`` uses it when
no Redis answers).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from celery import bootsteps
from celery.utils.collections import AttributeDict
from celery.utils.functional import pass1
from celery.worker import control
from kombu.connection import Connection
from kombu.pidbox import Mailbox

from config.settings import Settings

log = logging.getLogger("synmon.events")


def transport_options(url: str) -> dict[str, Any]:
    if not url.startswith("filesystem://"):
        return {}
    root = Path(urlsplit(url).path)
    folders = {
        "data_folder_in": root / "data",
        "data_folder_out": root / "data",
        "control_folder": root / "control",
        "processed_folder": root / "processed",
    }
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {key: str(value) for key, value in folders.items()} | {"store_processed": False}


def broker_url(url: str) -> str:
    return "filesystem://" if url.startswith("filesystem://") else url


def side_channel(settings: Settings) -> Connection:
    """A new connection to the side channel (the caller closes it)."""
    assert settings.events_url is not None
    return Connection(
        broker_url(settings.events_url), transport_options=transport_options(settings.events_url)
    )


class SideChannelControl(bootsteps.StartStopStep):  # type: ignore[misc]
    """Remote control over the side channel, for SQS workers."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        from config.settings import get_settings

        self.settings = get_settings()
        self.connection: Connection | None = None
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()
        super().__init__(c, **kwargs)

    def include_if(self, c: Any) -> bool:
        return self.settings.events_url is not None

    def start(self, c: Any) -> None:
        self.stopping.clear()
        self.thread = threading.Thread(
            target=self._serve_forever, args=(c,), name="synmon-remote-control", daemon=True
        )
        self.thread.start()

    def _listen(self, c: Any) -> Connection:
        conf = c.app.conf
        connection = side_channel(self.settings)
        mailbox = Mailbox(
            conf.control_exchange,
            type="fanout",
            accept=["json"],
            serializer="json",
            connection=connection,
            producer_pool=None,
        )
        node = mailbox.Node(
            c.hostname,
            handlers=control.Panel.data,
            state=AttributeDict(
                app=c.app,
                hostname=c.hostname,
                consumer=c,
                tset=pass1 if c.controller.use_eventloop else set,
            ),
        )
        node.channel = connection.channel()
        node.listen(callback=lambda body, message: self._handle(c, node, body, message))
        return connection

    def _serve_forever(self, c: Any) -> None:
        """Listen and answer until stopped; start over when the side channel breaks."""
        while not self.stopping.is_set():
            try:
                self.connection = self._listen(c)
                log.info("remote control listening on the side channel")
                while not self.stopping.is_set():
                    try:
                        self.connection.drain_events(timeout=1.0)
                    except TimeoutError:
                        continue
            except Exception as exc:  # noqa: BLE001 - the worker runs checks without it
                if self.stopping.is_set():
                    return
                log.warning("side channel unavailable (%s); trying again", exc)
                self.stopping.wait(2.0)
            finally:
                if self.connection is not None:
                    self.connection.release()
                    self.connection = None

    def _handle(self, c: Any, node: Any, body: Any, message: Any) -> None:
        c.app.clock.forward()
        try:
            node.handle_message(body, message)
        except KeyError as exc:
            log.error("no such control command: %s", exc)
        except Exception:
            log.exception("control command failed")

    def stop(self, c: Any) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
            self.thread = None

    shutdown = stop
