"""The web product on uvicorn: in the foreground for ``synmon web`` (SYNMON_WEB_WORKERS
processes), or in a thread of ``synmon up``'s supervisor (and of the tests)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from config.settings import Settings

# The product serves no websocket; uvicorn's websocket support would also import the
# `websockets` library, which pyppeteer pins to a release uvicorn cannot use.
NO_WEBSOCKETS = "none"


class WebServer:
    """uvicorn serving ``app`` on a socket bound before it starts (port 0: a free one,
    known at once), in a background thread; ``shutdown`` stops it gracefully."""

    def __init__(self, app: Any, address: str, port: int) -> None:
        self.socket = socket.socket(
            socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM
        )
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((address, port))
        self.socket.listen(128)
        self.address = address
        self.port: int = self.socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws=NO_WEBSOCKETS,
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self.socket]},
            name="synmon-web",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> WebServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web server did not start")
            time.sleep(0.02)
        return self

    def shutdown(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.socket.close()


def serve(app: Any, address: str, port: int) -> WebServer:
    return WebServer(app, address, port).start()


def run(settings: Settings) -> None:
    """``synmon web``: uvicorn in the foreground until SIGINT or SIGTERM. Each of the
    SYNMON_WEB_WORKERS processes builds the application from the environment."""
    uvicorn.run(
        "app.web.app:app_from_environment",
        factory=True,
        host=settings.web_address,
        port=settings.web_port,
        workers=settings.web_workers,
        log_level="warning",
        ws=NO_WEBSOCKETS,
        proxy_headers=True,
        # Only a proxy on this machine is believed about the client's address and scheme.
        forwarded_allow_ips="127.0.0.1",
        timeout_graceful_shutdown=10,
    )
