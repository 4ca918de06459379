"""A stand-in Docker engine for tests: the answers to the SDK calls the
runtime makes (node/runtime: listings, inspect, start, events, pulls, logs,
image save and load), over a unix socket, TCP or TLS, without a dockerd.

`serve(kind, where)` starts one in a daemon thread and returns the
docker_host URL to give docker.APIClient; `seen` records the calls (method,
path without the API version, and whether a registry auth header came).
"""

from __future__ import annotations

import json
import os
import socketserver
import ssl
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

IMAGE = {"Id": "sha256:" + "ab" * 32, "RepoTags": ["busybox:latest"], "RepoDigests": [], "Size": 1234}
# The body of an error the engine sends without a content type (and not
# JSON): the SDK reads it as text, which makes requests guess its charset.
UNTYPED_ERROR = "engine says no: café".encode()
seen: list[tuple[str, str, bool]] = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.answer()

    def do_POST(self) -> None:  # noqa: N802
        self.read_body()
        self.answer()

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while size := int(self.rfile.readline().strip() or b"0", 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return body
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self) -> None:
        path = self.path.split("?", 1)[0].removeprefix("/v1.41")
        seen.append((self.command, path, "X-Registry-Auth" in self.headers))
        routes = {
            ("GET", "/containers/json"): lambda: self.send_json(200, []),
            ("GET", "/images/json"): lambda: self.send_json(200, [IMAGE]),
            ("GET", "/images/busybox/json"): lambda: self.send_json(200, IMAGE),
            ("GET", "/containers/nope/json"): lambda: self.send_json(404, {"message": "No such container: nope"}),
            ("GET", "/containers/c1/json"): lambda: self.send_json(200, {"Id": "c1", "Config": {"Tty": False}}),
            ("POST", "/containers/c1/start"): lambda: self.send_bytes(500, UNTYPED_ERROR, None),
            ("GET", "/events"): lambda: self.send_lines([{"Type": "container", "Action": "start", "id": "c1"}]),
            ("POST", "/images/create"): lambda: self.send_lines([{"status": "Pulling from library/busybox"},
                                                                 {"status": "Download complete"}]),
            ("GET", "/images/busybox:latest/get"): lambda: self.send_bytes(200, b"a tar archive", "application/x-tar"),
            ("POST", "/images/load"): lambda: self.send_lines([{"stream": "Loaded image: busybox:latest\n"}]),
            ("GET", "/containers/c1/logs"): lambda: self.send_bytes(200, frame(1, b"out\n") + frame(2, b"err\n"),
                                                                    "application/vnd.docker.raw-stream"),
        }
        routes.get((self.command, path), lambda: self.send_json(404, {"message": f"no route {path}"}))()

    def send_json(self, status: int, value: Any) -> None:
        self.send_bytes(status, json.dumps(value).encode(), "application/json")

    def send_bytes(self, status: int, body: bytes, content_type: str | None) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_lines(self, values: list[dict[str, Any]]) -> None:
        # streams (events, pulls, loads) come chunked, one JSON object a chunk, as dockerd sends them
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for value in values:
            line = json.dumps(value).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
        self.wfile.write(b"0\r\n\r\n")


def frame(stream: int, data: bytes) -> bytes:
    """One frame of a non-TTY container's multiplexed log stream."""
    return struct.pack(">BxxxL", stream, len(data)) + data


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(kind: str, where: Path, tls: tuple[Path, Path] | None = None) -> str:
    """Serve in a daemon thread: kind "unix" (a socket at `where`), "tcp" or
    "https" (127.0.0.1, a free port; `tls`: the server's cert and key)."""
    server: socketserver.BaseServer
    if kind == "unix":
        if where.exists():
            os.unlink(where)
        server = UnixServer(str(where), Handler)
        url = f"unix://{where}"
    else:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        port = server.server_address[1]
        url = f"tcp://127.0.0.1:{port}"
        if kind == "https":
            assert tls is not None
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            server.socket = context.wrap_socket(server.socket, server_side=True)
            url = f"https://127.0.0.1:{port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return url
