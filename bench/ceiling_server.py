"""The ceiling of scenario 1: a bare aiohttp + uvloop + orjson handler answering a poll-sized JSON.

It parses the request body as the gateway does and answers the same bytes the gateway answers an
empty poll with (the bench passes a real gateway answer in `--body`), from the same number of
SO_REUSEPORT worker processes; no database, no middlewares. Whatever the gateway does beyond this
is the cost the ratio measures. Run: `python -m bench.ceiling_server --port 8099 --workers 2`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
from collections.abc import Sequence

import orjson
import uvloop
from aiohttp import web

__all__ = ["main", "run_worker"]

DEFAULT_BODY = '{"messages": [], "next_poll_s": 180, "tier": "low"}'


def run_worker(port: int, body: bytes, max_seconds: int) -> None:
    """Serve until SIGTERM/SIGINT, or SIGALRM after `max_seconds` (it never outlives a forgotten bench)."""
    signal.alarm(max_seconds)

    async def poll(request: web.Request) -> web.Response:
        orjson.loads(await request.read())
        return web.Response(body=body, content_type="application/json", headers={"X-Mailslot-Next-Poll": "180"})

    app = web.Application()
    app.router.add_post("/v1/poll", poll)
    web.run_app(app, host="127.0.0.1", port=port, reuse_port=True, loop=uvloop.new_event_loop(),
                access_log=None, print=None, handler_cancellation=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling_server", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--body", default=DEFAULT_BODY, help="the JSON every poll is answered with")
    parser.add_argument("--max-seconds", type=int, default=1800, help="stop by itself after this long")
    args = parser.parse_args(argv)
    body = orjson.dumps(orjson.loads(args.body))
    if args.workers <= 1:
        run_worker(args.port, body, args.max_seconds)
        return 0
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=run_worker, args=(args.port, body, args.max_seconds)) for _ in range(args.workers)
    ]
    for worker in workers:
        worker.start()

    def forward(signum: int, _frame: object) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGALRM, forward)
    signal.alarm(args.max_seconds + 5)
    for worker in workers:
        worker.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
