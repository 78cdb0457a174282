"""A hostile page that tries every way past the guard proxy, and what it would reach.

``Listeners`` holds a UDP and a TCP socket on 127.0.0.1 and records whatever arrives
on them; ``HostileServer`` serves a page (on 127.0.0.1) that aims WebRTC (STUN and
TURN servers, remote candidates, a data channel between two peers, an mDNS candidate),
WebTransport, WebSocket, fetch, beacons and preconnects at those ports. Nothing may
arrive: every socket Chromium opens must go through the proxy, which refuses them.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psutil

from app.execution.guard import ForbiddenTarget, TargetGuard
from tests.support.servers import TargetHandler, TargetServer

MDNS_PORT = 5353
MDNS_GROUPS = ("224.0.0.251", "ff02::fb")

HOSTILE_PAGE = """<!doctype html><html><head><title>Hostile</title></head><body>
<p id="ok">content</p>
<script>
const U = {udp}, T = {tcp};
window.attempts = {{peers: 0, errors: []}};
const note = (e) => window.attempts.errors.push(String(e));
async function stunAndTurn() {{
  const pc = new RTCPeerConnection({{iceCandidatePoolSize: 2, iceServers: [
    {{urls: [`stun:127.0.0.1:${{U}}`]}},
    {{urls: [`turn:127.0.0.1:${{U}}?transport=udp`, `turn:127.0.0.1:${{T}}?transport=tcp`],
      username: 'u', credential: 'p'}},
  ]}});
  window.attempts.peers++;
  pc.createDataChannel('probe');
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  // A made-up answer whose candidates are the listening ports: ICE checks go there.
  await pc.setRemoteDescription({{type: 'answer', sdp: offer.sdp.replace('a=setup:actpass', 'a=setup:active')}});
  for (const candidate of [
    `candidate:1 1 udp 2122260223 127.0.0.1 ${{U}} typ host`,
    `candidate:2 1 tcp 1518280447 127.0.0.1 ${{T}} typ host tcptype passive`,
    `candidate:3 1 udp 2122260223 0d7b2a1c-1111-2222-3333-444455556666.local ${{U}} typ host`,
  ]) {{
    try {{ await pc.addIceCandidate({{candidate, sdpMid: '0'}}); }} catch (e) {{ note(e); }}
  }}
}}
async function twoPeers() {{
  // Host candidates and a data channel between two peers of the page itself.
  const a = new RTCPeerConnection(), b = new RTCPeerConnection();
  window.attempts.peers += 2;
  a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
  a.createDataChannel('pair').onopen = () => {{ window.attempts.channelOpen = true; }};
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription);
}}
async function webTransport() {{
  try {{ await new WebTransport(`https://127.0.0.1:${{U}}/wt`).ready; }} catch (e) {{ note(e); }}
}}
function throughTheProxy() {{
  try {{ new WebSocket(`ws://127.0.0.1:${{T}}/`); }} catch (e) {{ note(e); }}
  fetch(`http://127.0.0.1:${{T}}/`).catch(note);
  navigator.sendBeacon(`http://127.0.0.1:${{T}}/beacon`, 'x');
  for (const [rel, href] of [['preconnect', `http://127.0.0.1:${{T}}`], ['dns-prefetch', '//prefetch.example']]) {{
    const link = document.createElement('link'); link.rel = rel; link.href = href;
    document.head.appendChild(link);
  }}
}}
stunAndTurn().catch(note);
twoPeers().catch(note);
webTransport();
throughTheProxy();
// Long enough for ICE to send its first checks and retransmissions.
setTimeout(() => document.body.insertAdjacentHTML('beforeend', '<p id="done">done</p>'), 3000);
</script></body></html>"""

PLAIN_PAGE = """<!doctype html><html><head><title>Plain</title></head><body>
<h1>Plain</h1><img src="/pixel.png"><button id="b" onclick="this.textContent='clicked'">go</button>
</body></html>"""


class Listeners:
    """A UDP and a TCP socket on 127.0.0.1 that record every datagram and connection."""

    def __init__(self) -> None:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(64)
        self.arrivals: list[str] = []
        self._closed = threading.Event()

    @property
    def udp_port(self) -> int:
        return int(self.udp.getsockname()[1])

    @property
    def tcp_port(self) -> int:
        return int(self.tcp.getsockname()[1])

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                data, sender = self.udp.recvfrom(65536)
            except OSError:
                return
            self.arrivals.append(f"udp from {sender}: {data[:24]!r}")

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, peer = self.tcp.accept()
            except OSError:
                return
            self.arrivals.append(f"tcp from {peer}")
            connection.close()

    def start(self) -> Listeners:
        for target in (self._receive, self._accept):
            threading.Thread(target=target, daemon=True).start()
        return self

    def close(self) -> None:
        self._closed.set()
        for sock in (self.udp, self.tcp):
            # shutdown wakes the threads blocked in recvfrom/accept
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@contextmanager
def listening() -> Iterator[Listeners]:
    listeners = Listeners().start()
    try:
        yield listeners
    finally:
        listeners.close()


class HostileHandler(TargetHandler):
    def _route(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.server.hits.append({"path": parts.path})
        if parts.path == "/hostile":
            page = HOSTILE_PAGE.format(udp=int(query["udp"]), tcp=int(query["tcp"]))
            self._send(200, page.encode(), "text/html; charset=utf-8")
        elif parts.path == "/plain":
            self._send(200, PLAIN_PAGE.encode(), "text/html; charset=utf-8")
        else:
            self._send(404, b"not found")

    do_GET = do_POST = _route


class HostileServer(TargetServer):
    def __init__(self) -> None:
        super().__init__()
        self.RequestHandlerClass = HostileHandler


class OfflineGuard(TargetGuard):
    """The guard, minus name lookups: a test's proxy never asks DNS about a public name.

    Addresses are vetted as usual; a name is refused (and kept) before any lookup, so
    that whatever Chromium asks the proxy for stays on this machine.
    """

    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__(False, allowed)
        self.names: list[str] = []

    def resolve(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[int, str]]:
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            self.names.append(host)
            raise ForbiddenTarget(host, host, "a name looked up in a test") from None
        return super().resolve(host, port, *args, **kwargs)


@dataclass
class SocketWatch:
    """The UDP sockets of a process tree and the machine's mDNS memberships, sampled."""

    mdns_sockets: set[str] = field(default_factory=set)
    udp_ports: set[int] = field(default_factory=set)
    group_users: dict[str, int] = field(default_factory=dict)
    samples: int = 0

    def sample(self, processes: list[psutil.Process]) -> None:
        for process in processes:
            try:
                connections = process.net_connections(kind="udp")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            for connection in connections:
                self.udp_ports.add(connection.laddr.port)
                if connection.laddr.port == MDNS_PORT or (
                    connection.raddr and connection.raddr.port == MDNS_PORT
                ):
                    self.mdns_sockets.add(f"pid {process.pid}: {connection}")
        for group, users in multicast_memberships().items():
            self.group_users[group] = max(users, self.group_users.get(group, 0))
        self.samples += 1


def _group_address(hex_text: str) -> str:
    raw = bytes.fromhex(hex_text)
    if len(raw) == 4:  # /proc/net/igmp prints IPv4 groups in host (little-endian) order
        raw = raw[::-1]
    return str(ipaddress.ip_address(raw))


def multicast_memberships() -> dict[str, int]:
    """How many sockets on this machine have joined each mDNS group (both families)."""
    users = dict.fromkeys(MDNS_GROUPS, 0)
    igmp = Path("/proc/net/igmp").read_text().splitlines()[1:]
    for line in igmp:
        fields = line.split()
        if line.startswith(("\t", " ")) and len(fields) >= 2:
            group = _group_address(fields[0])
            if group in users:
                users[group] += int(fields[1])
    for line in Path("/proc/net/igmp6").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 4:
            group = _group_address(fields[2])
            if group in users:
                users[group] += int(fields[3])
    return users
