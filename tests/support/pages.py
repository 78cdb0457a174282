"""Web pages for browser checks, served on 127.0.0.1 by the tests."""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.servers import TargetHandler, TargetServer

LOGIN = """<!doctype html><html><head><title>Sign in</title></head><body>
<h1>Sign in</h1>
<form method="post" action="/session">
  <input id="email" name="email"><input id="password" name="password" type="password">
  <select id="lang" name="lang"><option value="en">English</option><option value="nl">Nederlands</option></select>
  <button type="submit">Sign in</button>
</form></body></html>"""

DASHBOARD = """<!doctype html><html><head><title>Dashboard - Acme</title></head><body>
<h1>Welcome, {user}</h1><p id="lang">{lang}</p>
<ul><li class="item">one</li><li class="item">two</li></ul>
<div id="menu" style="display:none">menu</div>
<button id="toggle" onclick="document.getElementById('menu').style.display='block'">menu</button>
</body></html>"""

SPA = """<!doctype html><html><head><title>SPA home</title></head><body>
<nav><a id="to-settings" href="/spa/settings">Settings</a></nav><main id="view">Home view</main>
<script>
document.getElementById('to-settings').addEventListener('click', (event) => {
  event.preventDefault();
  history.pushState({}, '', '/spa/settings');
  setTimeout(() => {
    document.getElementById('view').innerHTML = '<h2 id="settings">Settings view</h2>';
    document.title = 'SPA settings';
  }, 300);
});
</script></body></html>"""

SLOW_ELEMENT = """<!doctype html><html><head><title>Slow</title></head><body>
<p>Loading...</p>
<script>setTimeout(() => {
  const div = document.createElement('div'); div.id = 'late'; div.textContent = 'Ready now';
  document.body.appendChild(div);
}, 1500);</script></body></html>"""

JS_ERROR = """<!doctype html><html><head><title>Broken script</title></head><body>
<p id="ok">content</p>
<script>console.error('console says no'); throw new Error('boom from page');</script>
</body></html>"""

BROKEN_RESOURCES = """<!doctype html><html><head><title>Broken resources</title></head><body>
<img src="/missing.png"><p id="ok">content</p>
<script>fetch('http://127.0.0.1:{closed}/x').catch(() => {{
  document.body.insertAdjacentHTML('beforeend', '<p id="refused">refused</p>');
}});</script>
</body></html>"""

NEVER_LOADS = """<!doctype html><html><head><title>Never loads</title></head><body>
<p>forever</p><img src="/hang?delay=120"></body></html>"""

SSRF = """<!doctype html><html><head><title>Reaching out</title></head><body>
<p id="ok">content</p>
<img src="http://127.0.0.1:{other}/pixel.png">
<iframe src="http://127.0.0.1:{other}/frame"></iframe>
<script>
fetch('http://169.254.169.254/latest/meta-data/').catch(() => {{}});
fetch('http://10.0.0.1/').catch(() => {{}});
</script></body></html>"""


# A page that says who it is everywhere a run records something: its title, a console
# error, a request the guard refuses (to 127.0.0.1:{blocked}), and a subresource that
# is missing; it shows #done after {delay} ms, so that runs of it overlap.
NOISY = """<!doctype html><html><head><title>Noisy {tag}</title></head><body>
<p id="tag">{tag}</p><img src="/missing-{tag}.png">
<script>
console.error('noisy {tag}');
fetch('http://127.0.0.1:{blocked}/from-{tag}').catch(() => null);
setTimeout(() => document.body.insertAdjacentHTML('beforeend', '<p id="done">done</p>'), {delay});
</script></body></html>"""


class PageHandler(TargetHandler):
    def _route(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        if path == "/login":
            self._page(LOGIN)
        elif path == "/session" and self.command == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            self.server.hits.append({"path": path, "form": form})
            if form.get("password") == self.server.password:  # type: ignore[attr-defined]
                user = form.get("email", "?").split("@")[0]
                self._send(
                    303,
                    b"",
                    headers={"Location": f"/dashboard?user={user}&lang={form.get('lang', '')}"},
                )
            else:
                self._page("<title>Sign in failed</title><h1>Wrong password</h1>", 401)
        elif path == "/dashboard":
            self._page(DASHBOARD.format(user=query.get("user", "?"), lang=query.get("lang", "")))
        elif path.startswith("/spa"):
            self._page(SPA)
        elif path == "/slow-element":
            self._page(SLOW_ELEMENT)
        elif path == "/js-error":
            self._page(JS_ERROR)
        elif path == "/broken-resources":
            self._page(BROKEN_RESOURCES.format(closed=query.get("closed", "9")))
        elif path == "/noisy":
            self._page(
                NOISY.format(
                    tag=query["tag"], blocked=int(query["blocked"]), delay=int(query["delay"])
                )
            )
        elif path == "/never-loads":
            self._page(NEVER_LOADS)
        elif path == "/ssrf":
            self._page(SSRF.format(other=query["other"]))
        elif path == "/protected":
            expected = (
                "Basic " + base64.b64encode(b"admin:" + self.server.password.encode()).decode()
            )  # type: ignore[attr-defined]
            if self.headers.get("Authorization") == expected:
                self._page("<title>Protected</title><h1>Secret area</h1>")
            else:
                self._page(
                    "<title>401</title>unauthorised", 401, {"WWW-Authenticate": 'Basic realm="x"'}
                )
        elif path == "/headers":
            self.server.hits.append({"path": path, "headers": dict(self.headers)})
            self._page(f"<title>Headers</title><pre id='h'>{self.headers.get('X-Trace', '')}</pre>")
        elif path == "/trivial":
            self._page(
                "<title>Trivial</title><button id='b' onclick=\"this.textContent='clicked'\">go</button>"
            )
        elif path == "/hang":
            time.sleep(float(query.get("delay", "30")))
            self._send(200, b"late")
        else:
            self.server.hits.append({"path": path})
            self._send(404, b"not found")

    do_GET = do_POST = _route


class PageServer(TargetServer):
    def __init__(self, password: str = "correct-horse") -> None:
        super().__init__()
        self.RequestHandlerClass = PageHandler  # type: ignore[assignment]
        self.password = password

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass
