"""Starting and stopping Chromium so that no process of it outlives its owner.

synmon starts Chromium itself rather than through pyppeteer's launcher, to control the
process: it gets ``PR_SET_PDEATHSIG`` (it dies with the worker process that owns it,
even on kill -9), a user-data folder named after the owner's PID (so a later worker
can recognise and sweep what a dead one left), and its whole process tree is killed
on close. pyppeteer then connects to its DevTools endpoint.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from config.errors import RetryableError

log = logging.getLogger("synmon.browser")
USER_DATA_PREFIX = "synmon-chromium-"
PR_SET_PDEATHSIG = 1
_ENDPOINT_RE = re.compile(rb"DevTools listening on (ws://\S+)")
# Chromium sends loopback past any proxy unless told otherwise: given with every proxy
# it is handed (at launch, and to each run's incognito context), so that nothing does.
PROXY_BYPASS = "<-loopback>"

# Where Chromium's own Google clients are sent instead of Google: a name under the
# reserved ``.invalid`` top-level domain (RFC 6761) never resolves, and the guard proxy
# refuses it before any lookup. Used for the services that no flag switches off (the
# sign-in client lists accounts on every start; on-demand components are fetched even
# with --disable-component-update), so that what is left of them is recognisably
# Chromium's and goes nowhere.
SERVICE_SINK_DOMAIN = "chromium.invalid"

# Required on this platform (see RESEARCH.md and docs/decisions.md, "Chromium reaches
# nothing but the guard proxy"): no GPU, no QUIC, no traffic of Chromium's own, and no
# socket that does not go through the proxy.
BASE_ARGS = (
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",  # QUIC is UDP: it would bypass the proxy
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    # WebRTC may only use UDP through the proxy, which has none: no STUN, no TURN over
    # UDP, no host candidates. This switch sets the webrtc.ip_handling_policy preference
    # above the profile's; --force-webrtc-ip-handling-policy no longer exists.
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    # Chromium resolves no name itself: every request names its host to the proxy,
    # which resolves and vets it. Anything that would resolve on its own (an mDNS ICE
    # candidate, a DNS prefetch, DNS over HTTPS) finds nothing.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-features="
    + ",".join(
        (
            "WebRtcHideLocalIpsWithMdns",  # announces host candidates by mDNS multicast
            "MediaRouter",  # Cast discovery: mDNS and SSDP multicast
            "DialMediaRouteProvider",
            "OptimizationHints",  # optimizationguide-pa.googleapis.com
            "AutofillServerCommunication",  # content-autofill.googleapis.com
            "NetworkTimeServiceQuerying",  # http://clients2.google.com/time/1/current
            "Translate",  # translate.googleapis.com
        )
    ),
    "--no-pings",  # <a ping> and hyperlink auditing
    "--disable-domain-reliability",  # beacons about Google properties' reliability
    "--disable-breakpad",  # no crash reports
    "--disable-field-trial-config",  # variations
    f"--variations-server-url=https://variations.{SERVICE_SINK_DOMAIN}",
    f"--gaia-url=https://gaia.{SERVICE_SINK_DOMAIN}",  # accounts.google.com ListAccounts
    f"--google-apis-url=https://apis.{SERVICE_SINK_DOMAIN}",  # www.googleapis.com tokens
    f"--lso-url=https://lso.{SERVICE_SINK_DOMAIN}",  # OAuth2 token service
    # On-demand components (the optimisation guide's model manifest) are fetched from
    # update.googleapis.com despite --disable-component-update.
    f"--component-updater=url-source=https://update.{SERVICE_SINK_DOMAIN}/service/update2/json",
    "--remote-debugging-port=0",
    "--remote-debugging-address=127.0.0.1",
)

# The profile Chromium starts with (``Default/Preferences`` in its user-data folder).
# The WebRTC preferences have no switch of their own; the rest switches off the
# profile's own clients of Google services, in case a flag above stops working.
PROFILE_PREFERENCES: dict[str, object] = {
    "webrtc": {
        "ip_handling_policy": "disable_non_proxied_udp",
        "multiple_routes_enabled": False,
        "nonproxied_udp_enabled": False,
    },
    "signin": {"allowed": False, "allowed_on_next_startup": False},
    "safebrowsing": {"enabled": False, "enhanced": False},
    "translate": {"enabled": False},
    "search": {"suggest_enabled": False},
    "alternate_error_pages": {"enabled": False},
    "net": {"network_prediction_options": 2},  # no preconnect or DNS prefetch
    "autofill": {"profile_enabled": False, "credit_card_enabled": False},
    "credentials_enable_service": False,
    "browser": {"has_seen_welcome_page": True, "check_default_browser": False},
}


class BrowserLaunchError(RetryableError, RuntimeError):
    """Chromium is missing or did not start: retryable, since the run may be delivered
    to a worker where it does (or to this one once it is installed)."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setsid()  # its own process group, so that the whole tree can be signalled at once


@dataclass
class Chromium:
    process: subprocess.Popen[bytes]
    endpoint: str
    user_data_dir: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tree(self) -> list[psutil.Process]:
        """Chromium and every process it started."""
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """Kill the browser and all its helpers, reap the browser, remove its profile."""
        processes = self.tree()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        psutil.wait_procs([p for p in processes if p.pid != self.process.pid], timeout=5)
        shutil.rmtree(self.user_data_dir, ignore_errors=True)


def launch(
    executable: str,
    proxy_port: int | None,
    extra_args: tuple[str, ...] = (),
    timeout: float = 30.0,
) -> Chromium:
    if not Path(executable).exists():
        raise BrowserLaunchError(
            f"no Chromium at {executable}: install Debian's chromium or set SYNMON_CHROMIUM_PATH"
        )
    user_data_dir = Path(tempfile.mkdtemp(prefix=f"{USER_DATA_PREFIX}{os.getpid()}-"))
    write_profile(user_data_dir)
    args = [executable, *BASE_ARGS, f"--user-data-dir={user_data_dir}", *extra_args]
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run its sandbox as root
    if proxy_port is not None:
        args += [
            f"--proxy-server=http://127.0.0.1:{proxy_port}",
            f"--proxy-bypass-list={PROXY_BYPASS}",
        ]
    args.append("about:blank")
    process = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl must run in the child before exec
    )
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    output = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 0.2)
        if ready:
            chunk = os.read(process.stderr.fileno(), 65536)
            if not chunk:
                break
            output += chunk
            match = _ENDPOINT_RE.search(output)
            if match:
                _drain_in_background(process)
                return Chromium(process, match.group(1).decode(), user_data_dir)
        if process.poll() is not None:
            break
    chromium = Chromium(process, "", user_data_dir)
    chromium.kill()
    raise BrowserLaunchError(f"Chromium did not start: {output.decode(errors='replace')[-500:]}")


def write_profile(user_data_dir: Path) -> None:
    """The preferences Chromium reads when it opens the default profile."""
    profile = user_data_dir / "Default"
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "Preferences").write_text(json.dumps(PROFILE_PREFERENCES), encoding="utf-8")


def _drain_in_background(process: subprocess.Popen[bytes]) -> None:
    """Chromium keeps writing to stderr; a full pipe would block it."""
    import threading

    def drain() -> None:
        assert process.stderr is not None
        with contextlib.suppress(Exception):
            while os.read(process.stderr.fileno(), 65536):
                pass

    threading.Thread(target=drain, name="chromium-stderr", daemon=True).start()


def sweep_orphans() -> int:
    """Kill Chromium processes whose owning worker process no longer exists."""
    killed = 0
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = process.info.get("cmdline") or []
        for arg in cmdline:
            match = re.search(rf"--user-data-dir=.*/{USER_DATA_PREFIX}(\d+)-", arg)
            if match and not psutil.pid_exists(int(match.group(1))):
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
                    killed += 1
                break
    for folder in Path(tempfile.gettempdir()).glob(f"{USER_DATA_PREFIX}*"):
        owner = folder.name[len(USER_DATA_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not psutil.pid_exists(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
    return killed


def chromium_processes() -> list[psutil.Process]:
    """Every Chromium process synmon started on this machine (tests count them)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        cmdline = " ".join(process.info.get("cmdline") or [])
        if USER_DATA_PREFIX in cmdline or ("chromium" in cmdline and "--type=" in cmdline):
            found.append(process)
    return found
