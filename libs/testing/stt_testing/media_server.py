"""A real HTTP media server on 127.0.0.1 for tests, with a few scripted misbehaviours."""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class MediaServer:
    """Serves files from `root`.

    `/forbidden/<f>` answers 403; `/flaky/<n>/<f>` answers 503 to the first n requests for that
    path, then serves the file; `/trickle/<n>/<f>` sends the file at n bytes a second (10 writes
    a second) and records in `gone` the paths whose client hung up; a path in `blocked`
    answers 403 until removed. `hits` counts requests per path.
    """

    def __init__(self, root: Path, host: str = "127.0.0.1") -> None:
        self.root = root
        self.hits: Counter[str] = Counter()
        self.blocked: set[str] = set()
        self.gone: dict[str, float] = {}  # trickled path -> when its client hung up (monotonic)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] += 1
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[0] == "forbidden" or self.path in server.blocked:
                    self.send_error(403, "Forbidden")
                    return
                if parts[0] == "flaky":
                    if server.hits[self.path] <= int(parts[1]):
                        self.send_error(503, "Service Unavailable")
                        return
                    parts = parts[2:]
                rate = 0
                if parts[0] == "trickle":
                    rate, parts = int(parts[1]), parts[2:]
                target = server.root.joinpath(*parts)
                if not target.is_file():
                    self.send_error(404, "Not Found")
                    return
                data = target.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not rate:
                    self.wfile.write(data)
                    return
                step = max(1, rate // 10)
                try:
                    for at in range(0, len(data), step):
                        self.wfile.write(data[at : at + step])
                        self.wfile.flush()
                        time.sleep(0.1)
                except OSError:
                    server.gone[self.path] = time.monotonic()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> MediaServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
