"""A tiny JSON-over-HTTP/1.1 server for the Python demo services (standard
library only, so the demo needs nothing beyond python3). An app gives a
function from path to (status, body); this module does keep-alive,
Content-Length, /healthz, quiet logging and clean shutdown on SIGTERM.
"""

import json
import os
import signal
import socketserver
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG_REQUESTS = os.environ.get("DEMO_LOG", "") not in ("", "0")


def not_found(path):
    return 404, {"error": "not_found", "message": f"no route for '{path}'"}


def make_handler(name, route, streams):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive; every response has Content-Length
        disable_nagle_algorithm = True  # headers and body are two writes
        timeout = 120  # seconds an idle keep-alive connection may hold a thread

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path in streams:
                return self.stream(streams[path])
            status, body = (200, {"status": "ok"}) if path == "/healthz" else route(path)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def stream(self, events):
            """Server-sent events from `events(query)`, each flushed as it comes, chunked."""
            query = dict(p.split("=", 1) for p in self.path.split("?", 1)[1].split("&") if "=" in p) if "?" in self.path else {}
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for event in events(query):
                    data = event.encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def log_request(self, code="-", size="-"):
            if LOG_REQUESTS:
                sys.stderr.write(f"{name} {self.command} {self.path} {code}\n")

        def log_message(self, format, *args):
            pass  # errors surface as responses; default access logging is too noisy

    return Handler


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # listen backlog; the default 5 drops bursts

    def server_bind(self):
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def serve(name, route, default_port, streams=None):
    """Serves `route(path) -> (status, body)` on 127.0.0.1:$PORT until SIGTERM or SIGINT.
    `streams` maps paths to generators of server-sent events (given the query as a dict)."""
    port = int(os.environ.get("PORT", str(default_port)))
    server = Server(("127.0.0.1", port), make_handler(name, route, streams or {}))

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stderr.write(f"{name} listening on http://127.0.0.1:{server.server_port}\n")
    try:
        server.serve_forever()
    finally:
        server.server_close()
