"""Pages that navigate on their own, and a server that records what it was sent.

Served on 127.0.0.1 by the tests of browser steps across navigations
(tests/execution/browser/test_browser_navigation.py) and of where a check's secrets go
(tests/execution/browser/test_browser_secrets.py).
"""

from __future__ import annotations

from typing import Any

from tests.support.servers import TargetHandler, TargetServer

# The landing page's heading appears a moment after load, so that a step waiting for
# it is still waiting in the new document rather than finding it at once.
LANDING = """<!doctype html><html><head><title>Landed - Acme</title></head><body>
<p id="where">landing</p>
<script>setTimeout(() => {
  document.body.insertAdjacentHTML('beforeend', '<h1 id="landed">Welcome aboard</h1>');
}, 200);</script></body></html>"""

# A single-page login form: the click starts a script that navigates later, the way
# forms that post with fetch() and then set location.href do.
DELAYED = """<!doctype html><html><head><title>Sign in</title></head><body>
<input id="email"><button id="go">Sign in</button>
<script>
document.getElementById('go').addEventListener('click', () => {
  setTimeout(() => { location.href = '/landing?via=script'; }, 300);
});
</script></body></html>"""

META_REFRESH = """<!doctype html><html><head><title>Moving</title>
<meta http-equiv="refresh" content="1;url=/landing?via=meta"></head>
<body><p>You are being redirected</p></body></html>"""

# One hop of a chain of client-side redirects: /chain?left=N goes on to left=N-1.
CHAIN_HOP = """<!doctype html><html><head><title>Hop {left}</title></head><body>
<p>hop {left}</p>
<script>setTimeout(() => {{ location.replace('{next}'); }}, 150);</script>
</body></html>"""

FORM = """<!doctype html><html><head><title>Order</title></head><body>
<form method="post" action="/submit"><input id="item" name="item" value="tea">
<button id="order" type="submit">Order</button></form></body></html>"""

# A page of its own origin that loads a subresource, an iframe and a fetch from the
# other origin: the check's headers must reach only the first.
THIRD_PARTY = """<!doctype html><html><head><title>Mixed origins</title>
<script src="/own.js"></script></head><body>
<p id="ok">content</p>
<img src="http://127.0.0.1:{other}/pixel.png">
<iframe src="http://127.0.0.1:{other}/frame"></iframe>
<script>
fetch('/own-fetch').then(() => fetch('http://127.0.0.1:{other}/fetched', {{mode: 'no-cors'}}))
  .then(() => document.body.insertAdjacentHTML('beforeend', '<p id="fetched">done</p>'));
</script></body></html>"""

# A field the check fills, and a big label, so that a screenshot shows what is typed.
TYPING = """<!doctype html><html><head><title>Typing</title>
<style>input {{ font: 40px monospace; width: 900px; }}</style></head><body>
<h1>Type here</h1><input id="field"><input id="other" value="{other}">
</body></html>"""


class NavigationHandler(TargetHandler):
    """Routes for navigation and secrets tests; every request is recorded with its headers."""

    def _route(self) -> None:
        path, query, _ = self._request()
        if path == "/landing":
            self._page(LANDING)
        elif path == "/delayed":
            self._page(DELAYED)
        elif path == "/meta-refresh":
            self._page(META_REFRESH)
        elif path == "/chain":
            left = int(query.get("left", "3"))
            following = f"/chain?left={left - 1}" if left > 1 else "/landing?via=chain"
            self._page(CHAIN_HOP.format(left=left, next=following))
        elif path == "/form":
            self._page(FORM)
        elif path == "/submit" and self.command == "POST":
            self._send(303, b"", headers={"Location": "/landing?via=form"})
        elif path == "/third-party":
            self._page(THIRD_PARTY.format(other=query["other"]))
        elif path == "/away":
            self._send(302, b"", headers={"Location": query["to"]})
        elif path == "/typing":
            self._page(TYPING.format(other=query.get("other", "")))
        elif path in ("/own.js", "/own-fetch", "/fetched"):
            self._send(200, b"// ok", "text/javascript")
        elif path == "/frame":
            self._page("<title>frame</title><p>framed</p>")
        elif path == "/pixel.png":
            self._send(200, b"", "image/png")
        else:
            self._send(404, b"not found")

    do_GET = do_POST = _route


class NavigationServer(TargetServer):
    def __init__(self) -> None:
        super().__init__()
        self.RequestHandlerClass = NavigationHandler

    def headers_seen(self, path_prefix: str) -> list[dict[str, str]]:
        """The headers of every request whose path starts with ``path_prefix``, lower-cased names."""
        return [
            {name.lower(): value for name, value in hit["headers"].items()}
            for hit in self.hits
            if hit["path"].startswith(path_prefix)
        ]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass
