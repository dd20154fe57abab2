"""catalog: the product list of the demo shop.

A plain HTTP/1.1 server (Python standard library only) that knows nothing of
the mesh. Endpoints:
  GET /items        -> [{"id", "name"}, ...]
  GET /items/<id>   -> {"id", "name"} or 404 {"error": "not_found", ...}
  GET /healthz      -> 200 {"status": "ok"}
Env: PORT (default 8081), DEMO_LOG=1 to log one line per request to stderr.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from demo_http import not_found, serve  # noqa: E402

ITEMS = [
    {"id": "espresso", "name": "Espresso"},
    {"id": "latte", "name": "Caffe Latte"},
    {"id": "croissant", "name": "Butter Croissant"},
    {"id": "bagel", "name": "Sesame Bagel"},
]
ITEMS_BY_ID = {item["id"]: item for item in ITEMS}


def route(path):
    if path == "/items":
        return 200, ITEMS
    item = ITEMS_BY_ID.get(path[len("/items/"):]) if path.startswith("/items/") else None
    return (200, item) if item else not_found(path)


if __name__ == "__main__":
    serve("catalog", route, 8081)
