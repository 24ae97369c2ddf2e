"""With SENTRY_DSN set, errors reach Sentry; the DSN points at a local receiver on loopback."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

from tests.app.conftest import TrainedPackage
from tests.support.servers import LOOPBACK, wait_until


class _Receiver(BaseHTTPRequestHandler):
    envelopes: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        type(self).envelopes.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        return


def test_rejected_settings_are_reported_to_sentry(trained: TrainedPackage, app_process, tmp_path: Path) -> None:
    server = ThreadingHTTPServer((LOOPBACK, 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings = tmp_path / "settings.json"
        settings.write_text(json.dumps({"decision_threshold": 7}))
        dsn = f"http://public@{LOOPBACK}:{server.server_address[1]}/1"
        app = app_process(trained.path, env={"SENTRY_DSN": dsn, "SETTINGS_SOURCE": f"file:{settings}"})
        wait_until(lambda: any(b"decision_threshold" in e for e in _Receiver.envelopes), 30, "sentry event")
        assert app.terminate()
    finally:
        server.shutdown()
