"""``synmon up``: the whole system on one machine, with nothing to install or configure.

One supervisor process holds an SQS-compatible endpoint (moto, in-process, on
loopback) and the web product, and starts the real processes as children: one worker
per kind and location, the scheduler, ingest and Flower. Storage is a SQLite file in
the data folder. Ctrl-C (or SIGTERM) stops the children gracefully, then the rest.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from config.errors import SynmonError
from config.settings import Settings, load_settings, reset_settings

if TYPE_CHECKING:
    from app.definitions.loader import Definitions

HOW_TO_ENABLE_BROWSERS = (
    "to enable them, install Chromium (as root: scripts/system-deps, or "
    "apt-get install -y chromium fonts-liberation) or set SYNMON_CHROMIUM_PATH to a "
    "Chromium executable, then start synmon up again"
)


class UpError(SynmonError, RuntimeError):
    """``synmon up`` cannot bring the system up; the message says what is missing."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(address: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    restarts: int = 0


@dataclass
class Local:
    settings: Settings
    env: dict[str, str]
    children: list[Child] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    moto: Any = None
    web: Any = None
    web_url: str = ""
    flower_url: str | None = None
    # Why browser checks do not run, when no Chromium was found; empty when they do.
    browsers_disabled: str = ""
    # The admin made on this start (name, password), None when users existed already.
    web_admin: tuple[str, str] | None = None


def start_sqs_endpoint() -> tuple[Any, str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise UpError("the embedded SQS endpoint needs moto: pip install 'synmon[local]'") from None
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_chromium(settings: Settings, env: Mapping[str, str]) -> tuple[str | None, str]:
    """The Chromium the browser workers would launch, or None and the reason there is none.

    The workers launch ``settings.chromium_path`` and nothing else (app/execution/browser/pool.py),
    so a path set on purpose is taken as it is; only the default may fall back to a
    ``chromium`` found on PATH, as distributions other than Debian place it elsewhere.
    """
    configured = settings.chromium_path
    if _executable(configured):
        return configured, ""
    if env.get("SYNMON_CHROMIUM_PATH"):
        return None, f"SYNMON_CHROMIUM_PATH={configured} is not an executable file"
    found = shutil.which("chromium", path=env.get("PATH"))
    if found is not None:
        return found, ""
    return None, f"no Chromium at {configured} and no chromium on PATH"


def browsers_paused(definitions: Definitions) -> tuple[Definitions, list[str]]:
    """The definitions with every browser check disabled, and those checks' ids.

    Synced disabled rather than left out: they stay listed (status page, API, synmon
    runs) with ``enabled: false``, their history is kept, and the dispatcher never sends
    a run for them, so no run waits in a queue that no worker reads. With Chromium back,
    the next synmon up syncs them enabled again.
    """
    paused = [c.id for c in definitions.checks if c.type == "browser" and c.enabled]
    checks = [
        c.model_copy(update={"enabled": False}) if c.type == "browser" else c
        for c in definitions.checks
    ]
    return replace(definitions, checks=checks), paused


def browsers_disabled_line(reason: str, paused: list[str]) -> str:
    listed = f" (synced disabled: {', '.join(paused)})" if paused else ""
    return f"browser checks are disabled: {reason}{listed}; {HOW_TO_ENABLE_BROWSERS}"


def prepare(paths: list[Path], base_env: dict[str, str]) -> Local:
    """Start the endpoint and the web product, migrate, create queues, sync the checks."""
    from app.definitions.loader import load_definitions
    from app.local.demo import demo_routes
    from app.ops.metrics import Metrics
    from app.pipeline.sqs import create_queues
    from app.pipeline.sync import sync
    from app.storage.db import migrate, sessions
    from app.web.accounts import ensure_admin
    from app.web.app import create_app
    from app.web.server import serve

    env = dict(base_env)
    settings = load_settings(env)
    if not _port_free(settings.web_address, settings.web_port):
        raise UpError(
            f"port {settings.web_port} on {settings.web_address} is taken; "
            "set SYNMON_WEB_PORT to another port"
        )
    moto, endpoint = start_sqs_endpoint()
    demo_host = f"{settings.web_address}:{settings.web_port}"
    allowed = [*settings.allowed_targets, demo_host]
    env.update(
        SYNMON_SQS_ENDPOINT=endpoint,
        SYNMON_DATA_DIR=str(settings.data_dir.resolve()),
        SYNMON_DATABASE_URL=settings.database_url,
        SYNMON_PUBLIC_VAR_DEMO_HOST=demo_host,
        SYNMON_ALLOWED_TARGETS=",".join(str(target) for target in allowed),
        # Flower's side channel: the configured Redis, or else a folder (no server needed).
        SYNMON_EVENTS_URL=settings.events_url
        or f"filesystem://{(settings.data_dir / 'events').resolve()}",
    )
    # Every process writes its metrics here; the web product's /metrics adds them up.
    metrics_dir = (settings.data_dir / "metrics").resolve()
    shutil.rmtree(metrics_dir, ignore_errors=True)
    env["SYNMON_METRICS_DIR"] = str(metrics_dir)
    if not settings.flower_basic_auth and not settings.flower_auth_disabled:
        env["SYNMON_FLOWER_BASIC_AUTH"] = f"synmon:{secrets.token_urlsafe(12)}"
    if not _port_free(settings.flower_address, settings.flower_port):
        env["SYNMON_FLOWER_PORT"] = str(_free_port())
    chromium, browsers_disabled = find_chromium(load_settings(env), env)
    if chromium is not None:
        env["SYNMON_CHROMIUM_PATH"] = chromium
    settings = load_settings(env)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.database_url)
    create_queues(settings)
    paused: list[str] = []
    if paths:  # all paths together: a sync of one would remove what the others define
        definitions = load_definitions(paths, settings)
        if browsers_disabled:
            definitions, paused = browsers_paused(definitions)
        with sessions(settings.database_url)() as session:
            print(sync(session, definitions).summary(applied=True))
    if browsers_disabled:
        browsers_disabled = browsers_disabled_line(browsers_disabled, paused)
        print(f"synmon up: {browsers_disabled}", file=sys.stderr, flush=True)
    # As for Flower: a login made up on the first start, printed in the banner; kept in
    # the database, so a later start on the same data folder has none to print.
    with sessions(settings.database_url).begin() as session:
        admin = ensure_admin(session)
    metrics = Metrics(settings)
    app = create_app(settings, metrics.render, extra=[demo_routes()])
    web = serve(app, settings.web_address, settings.web_port)
    local = Local(
        settings=settings, env=env, moto=moto, web=web, browsers_disabled=browsers_disabled
    )
    local.web_url = f"http://{demo_host}/"
    local.web_admin = admin
    return local


def plan_children(local: Local) -> list[Child]:
    settings = local.settings
    cli = [sys.executable, "-m", "app.cli"]
    children = []
    browsers = not local.browsers_disabled
    for location in settings.locations:
        children.append(
            Child(
                f"worker-http-{location}", [*cli, "worker", "-l", location, "-k", "http", "-c", "2"]
            )
        )
        if browsers:
            children.append(
                Child(
                    f"worker-browser-{location}",
                    [*cli, "worker", "-l", location, "-k", "browser", "-c", "1"],
                )
            )
    children.append(Child("beat", [*cli, "beat"]))
    children.append(Child("ingest", [*cli, "ingest"]))
    children.append(Child("flower", [*cli, "flower"]))
    local.flower_url = f"http://{settings.flower_address}:{settings.flower_port}/"
    return children


def start_child(local: Local, child: Child) -> None:
    logs = local.settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    child.log = open(logs / f"{child.name}.log", "ab")  # noqa: SIM115 - closed in shutdown
    child.process = subprocess.Popen(
        child.argv,
        env=local.env,
        stdout=child.log,
        stderr=subprocess.STDOUT,
        # Ctrl-C reaches the supervisor only; it stops the children in order.
        start_new_session=True,
    )


def banner(local: Local) -> str:
    settings = local.settings
    web_login = (
        f"sign in as {local.web_admin[0]}, password {local.web_admin[1]} (made now; "
        f"`synmon users set-password {local.web_admin[0]}` changes it)"
        if local.web_admin
        else "sign in with a user of this data folder (`synmon users list`)"
    )
    lines = [
        "",
        "synmon is up.",
        f"  dashboard     {local.web_url}",
        f"                {web_login}",
        f"  REST API      {local.web_url}api/v1/docs",
        f"  metrics       {local.web_url}metrics",
        f"  Flower        {local.flower_url}",
        f"                login {settings.flower_basic_auth or '(auth disabled)'}",
        f"                events over {settings.events_url}",
        f"  database      {settings.database_url}",
        f"  SQS endpoint  {settings.sqs_endpoint}",
        f"  browsers      {settings.chromium_path}"
        if not local.browsers_disabled
        else f"  browsers      {local.browsers_disabled}",
        f"  logs          {settings.data_dir / 'logs'}",
        "  results       synmon runs --since 10m, with this environment:",
        f"                SYNMON_DATA_DIR={settings.data_dir}",
        f"                SYNMON_SQS_ENDPOINT={settings.sqs_endpoint}",
        "Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


def shutdown(local: Local, grace: float = 60.0) -> None:
    for child in reversed(local.children):
        if child.process is not None and child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in local.children:
        if child.process is None:
            continue
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait(timeout=10)
        if child.log is not None:
            child.log.close()
    if local.web is not None:
        local.web.shutdown()
    if local.moto is not None:
        local.moto.stop()


def up(paths: list[Path], base_env: dict[str, str] | None = None) -> int:
    reset_settings()
    local = prepare(paths, dict(os.environ if base_env is None else base_env))
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: local.stop.set())
    local.children = plan_children(local)
    try:
        for child in local.children:
            start_child(local, child)
        print(banner(local), flush=True)
        while not local.stop.wait(1.0):
            for child in local.children:
                assert child.process is not None
                if child.process.poll() is not None:
                    # A crashed child comes back, a few times; then synmon up gives up loudly.
                    if child.restarts >= 5:
                        print(
                            f"{child.name} keeps exiting; see its log. Stopping.", file=sys.stderr
                        )
                        local.stop.set()
                        break
                    print(
                        f"{child.name} exited ({child.process.returncode}); restarting",
                        file=sys.stderr,
                    )
                    child.restarts += 1
                    start_child(local, child)
    finally:
        print("stopping synmon ...", flush=True)
        shutdown(local)
        print("stopped.", flush=True)
    return 0
