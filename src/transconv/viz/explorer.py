"""The explorer page: one self-contained HTML file (no network, no CDN).

The page computes its frames and matrix in the browser from a line-for-line port of
:mod:`transconv.connectivity` (``explorer.html``); the tests drive it in headless
Chromium and compare what it shows with the library.  :func:`explorer_html` fills in the
starting geometry; :func:`serve` serves the page on ``127.0.0.1``.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Mapping, Optional

__all__ = ["explorer_html", "serve"]

_PLACEHOLDER = "/*CONFIG*/{}"
_KEYS = {"h", "w", "k", "s", "p", "d", "a", "t", "view"}


def explorer_html(config: Optional[Mapping[str, Any]] = None) -> str:
    """The page as a string, preset to ``config`` (keys ``h w k s p d a t view``; ``t`` = transposed).

    >>> html = explorer_html({"h": 3, "w": 3, "k": 3, "s": 2, "p": 1, "a": 1, "t": 1})
    >>> '"s": 2' in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    True
    """
    template = resources.files("transconv.viz").joinpath("explorer.html").read_text(encoding="utf-8")
    cfg = {k: v for k, v in dict(config or {}).items() if k in _KEYS}
    payload = json.dumps(cfg).replace("</", "<\\/")
    return template.replace(_PLACEHOLDER, "/*CONFIG*/" + payload, 1)


def make_server(html: str, port: int = 8000):
    """An ``http.server`` on 127.0.0.1 that answers every GET with the page."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = html.encode("utf-8")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            if self.path == "/favicon.ico":  # browsers ask; there is none
                self.send_response(204)
                self.end_headers()
                return
            if self.path.split("?")[0] not in ("/", "/index.html", "/explorer.html"):
                self.send_error(404, "the explorer is at /")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # quiet
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def serve(html: str, port: int = 8000) -> int:
    """Serve the page until Ctrl-C; returns an exit code."""
    import sys

    try:
        server = make_server(html, port)
    except OSError as exc:
        print(f"transconv explore: error: cannot listen on 127.0.0.1:{port} ({exc.strerror}); try --port 0",
              file=sys.stderr)
        return 2
    host, real_port = server.server_address[:2]
    print(f"serving the transconv explorer on http://{host}:{real_port}/  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
