"""pricing v2: list prices with a 10% discount (v1 is the TypeScript version).

A plain HTTP/1.1 server (Python standard library only) that knows nothing of
the mesh. Base prices come from prices.json, shared with v1. Endpoints:
  GET /prices/<id>      -> {"id", "price", "currency", "version": "v2"} or 404
  GET /ticks[?count=N]  -> server-sent events: a price tick every second (forever, or N ticks)
  GET /healthz          -> 200 {"status": "ok"}
Env: PORT (default 8083), DEMO_LOG=1 to log one line per request to stderr.
"""

import itertools
import json
import os
import random
import sys
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from demo_http import not_found, serve  # noqa: E402

VERSION = "v2"
DISCOUNT = 0.10
with open(os.path.join(HERE, "prices.json")) as f:
    TABLE = json.load(f)


def route(path):
    base = TABLE["prices"].get(path[len("/prices/"):]) if path.startswith("/prices/") else None
    if base is None:
        return not_found(path)
    item_id = path[len("/prices/"):]
    return 200, {"id": item_id, "price": round(base * (1 - DISCOUNT), 2), "currency": TABLE["currency"], "version": VERSION}


TICK_S = float(os.environ.get("TICK_MS", "1000")) / 1000


def ticks(query):
    ids = list(TABLE["prices"])
    count = int(query.get("count", "0")) or None
    for n in itertools.islice(itertools.count(1), count):
        item_id = ids[(n - 1) % len(ids)]
        price = round(TABLE["prices"][item_id] * (1 - DISCOUNT) * random.uniform(0.95, 1.05), 2)
        at = datetime.now(timezone.utc).isoformat()
        data = {"id": item_id, "price": price, "currency": TABLE["currency"], "version": VERSION, "at": at}
        yield f"id: {n}\nevent: tick\ndata: {json.dumps(data)}\n\n"
        if count is None or n < count:
            time.sleep(TICK_S)


if __name__ == "__main__":
    serve("pricing/v2", route, 8083, streams={"/ticks": ticks})
