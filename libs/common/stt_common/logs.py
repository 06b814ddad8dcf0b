"""JSON log lines, one object per line, with the job's `request_id` (and `trace_id`) when a line is
about a job."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

from stt_common import tracing

_RESERVED = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Anything passed through `extra=` (request_id, topic, ...) becomes a field.
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        # The trace of the job being handled (set by each service around a job); see `tracing`.
        trace_id = tracing.current_trace_id()
        if trace_id is not None:
            entry.setdefault("trace_id", trace_id)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup(service: str) -> None:
    level = os.environ.get("STT_LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("STT_LOG_FORMAT", "json") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka", "httpx", "faster_whisper"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
