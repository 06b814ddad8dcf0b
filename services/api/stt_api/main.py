"""`stt api`: serve the HTTP API with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from stt_api.app import create_app
from stt_common import logs, metrics
from stt_common.settings import Settings


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stt api", description="Serve the HTTP API")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args(argv)
    logs.setup("api")
    settings = Settings()
    host, port = args.host or settings.api.host, args.port or settings.api.port
    if args.workers > 1:
        # Each worker process builds its own app (and Redis pool, Kafka producer); their metrics
        # are added up across processes.
        with metrics.shared_between_processes():
            uvicorn.run(
                "stt_api.app:create_app",
                factory=True,
                workers=args.workers,
                host=host,
                port=port,
                log_config=None,
                access_log=False,
            )
        return 0
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)
    return 0
