"""Shared helpers of the dependency audit tests: OSV fixtures, exports and a loopback OSV API."""

from __future__ import annotations

import json
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
OSV_FOLDER = FIXTURES / "osv"
SLOW_HOLD_S = 30.0
"""Longest a ``slow`` answer is held back (s): the fixture releases it at teardown, long after any
client timeout under test, so a timeout never depends on how loaded the machine is."""


def advisory_json(advisory_id: str) -> dict[str, Any]:
    """One fixture advisory as parsed JSON."""
    return json.loads((OSV_FOLDER / f"{advisory_id}.json").read_text(encoding="utf-8"))


def make_zip(path: Path, entries: dict[str, bytes] | None = None) -> Path:
    """An OSV export zip holding every fixture advisory (or `entries`)."""
    if entries is None:
        entries = {p.name: p.read_bytes() for p in sorted(OSV_FOLDER.glob("*.json"))}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def write(folder: Path, name: str, text: str) -> Path:
    """Write `text` to `folder/name` (parents created) and return the path."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def osv_zip(tmp_path: Path) -> Path:
    return make_zip(tmp_path / "PyPI-all.zip")


@dataclass
class FakeOsv:
    """A loopback OSV API. `answers` maps (name, version or None) to advisory ids; `mode`
    makes it fail: ``500``, ``slow``, ``redirect``, ``huge``, ``not-json``, ``detail-404``."""

    answers: dict[tuple[str, str | None], list[str]] = field(default_factory=dict)
    mode: str = "ok"
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    url: str = ""
    page_size: int = 0
    """When > 0, batch answers carry at most this many ids and a next_page_token."""
    release: threading.Event = field(default_factory=threading.Event)
    """Set at teardown: a ``slow`` answer is sent only then (or after `SLOW_HOLD_S`)."""
    answered_slow: threading.Event = field(default_factory=threading.Event)
    """Set once a ``slow`` answer has been sent."""


def _handler(fake: FakeOsv) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first (the timeout test)

        def _fail(self) -> bool:
            if fake.mode == "500":
                self._send(500, b"internal error")
                return True
            if fake.mode == "slow":
                fake.release.wait(SLOW_HOLD_S)
                self._send(200, b"{}")
                fake.answered_slow.set()
                return True
            if fake.mode == "redirect":
                self._send(302, b"", {"Location": "http://127.0.0.2:9/v1/querybatch"})
                return True
            if fake.mode == "huge":
                self.send_response(200)
                self.send_header("Content-Length", str(64 * 1024 * 1024))
                self.end_headers()
                return True
            if fake.mode == "not-json":
                self._send(200, b"<html>maintenance</html>")
                return True
            return False

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append(("POST", self.path, body))
            if self._fail():
                return
            results = []
            for query in body["queries"]:
                key = (query["package"]["name"], query.get("version"))
                ids = fake.answers.get(key, [])
                start = int(query.get("page_token", "0"))
                if fake.page_size:
                    page = ids[start : start + fake.page_size]
                    item: dict[str, Any] = {"vulns": [{"id": i} for i in page]}
                    if start + fake.page_size < len(ids):
                        item["next_page_token"] = str(start + fake.page_size)
                else:
                    item = {"vulns": [{"id": i, "modified": "2025-01-01T00:00:00Z"} for i in ids]}
                results.append(item)
            self._send(200, json.dumps({"results": results}).encode())

        def do_GET(self) -> None:
            fake.requests.append(("GET", self.path, None))
            advisory_id = self.path.rsplit("/", 1)[-1]
            path = OSV_FOLDER / f"{advisory_id}.json"
            if fake.mode == "detail-404" or not path.exists():
                self._send(404, b'{"code": 5, "message": "Bug not found."}')
                return
            self._send(200, path.read_bytes())

    return Handler


@pytest.fixture
def fake_osv() -> Iterator[FakeOsv]:
    fake = FakeOsv()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        fake.release.set()  # a held-back slow answer goes out now; its thread ends
        server.shutdown()
        server.server_close()
