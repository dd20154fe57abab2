"""catalog: the product list of the demo shop.

A plain HTTP/1.1 server (Python standard library only) that knows nothing of
the mesh. Endpoints:
  GET /items        -> [{"id", "name"}, ...]
  GET /items/<id>   -> {"id", "name"} or 404 {"error": "not_found", ...}
  GET /healthz      -> 200 {"status": "ok"}
Env: PORT (default 8081), DEMO_LOG=1 to log one line per request to stderr.
"""

import json
import os
import signal
import socketserver
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICE = "catalog"
ITEMS = [
    {"id": "espresso", "name": "Espresso"},
    {"id": "latte", "name": "Caffe Latte"},
    {"id": "croissant", "name": "Butter Croissant"},
    {"id": "bagel", "name": "Sesame Bagel"},
]
ITEMS_BY_ID = {item["id"]: item for item in ITEMS}
LOG_REQUESTS = os.environ.get("DEMO_LOG", "") not in ("", "0")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response has Content-Length
    disable_nagle_algorithm = True  # headers and body are two writes
    timeout = 120  # seconds an idle keep-alive connection may hold a thread

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self.reply(200, {"status": "ok"})
        elif path == "/items":
            self.reply(200, ITEMS)
        elif path.startswith("/items/") and path[len("/items/"):] in ITEMS_BY_ID:
            self.reply(200, ITEMS_BY_ID[path[len("/items/"):]])
        else:
            self.reply(404, {"error": "not_found", "message": f"no route for '{path}'"})

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code="-", size="-"):
        if LOG_REQUESTS:
            sys.stderr.write(f"{SERVICE} {self.command} {self.path} {code}\n")

    def log_message(self, format, *args):
        pass  # errors surface as responses; default access logging is too noisy


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # listen backlog; the default 5 drops bursts

    def server_bind(self):
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def main():
    port = int(os.environ.get("PORT", "8081"))
    server = Server(("127.0.0.1", port), Handler)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stderr.write(f"{SERVICE} listening on http://127.0.0.1:{server.server_port}\n")
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
