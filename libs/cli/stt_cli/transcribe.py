"""`stt transcribe FILE_OR_URL`: submit a job through the HTTP API, optionally wait and print it.

    stt transcribe talk.mp3 --wait --format srt > talk.srt
    stt transcribe https://host/a.mp3 --language en          # prints the request_id
    stt transcribe talk.mp3 --wait --translate --prompt "Nguyễn Văn An, Kafka"

A local file is uploaded first (`POST /api/v1/uploads`) and submitted as its `minio://` URL.
The API is `--url`, else STT_API_URL (default http://127.0.0.1:8000); the key is `--api-key`,
else STT_API_KEY, else the first of STT_API_KEYS, from the environment or `./.env`.
Exit status: 0 completed (or submitted, without --wait), 1 failed, 2 usage, 3 deadline passed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from dotenv import dotenv_values

from stt_client import (
    AuthenticationError,
    DeadlineExceeded,
    Job,
    JobFailed,
    SttClient,
    SttError,
)
from stt_client._core import JobOptions, default_request_id
from stt_common.tenants import key_of_entry

DEFAULT_URL = "http://127.0.0.1:8000"
URL_SCHEMES = ("http", "https", "minio", "s3")
FORMATS = ("text", "json", "srt", "vtt")
EXIT_FAILED, EXIT_USAGE, EXIT_DEADLINE = 1, 2, 3
BAR_WIDTH = 30
PROGRESS_POLL = 2.0  # seconds; the transcriber reports progress about this often


def _config() -> dict[str, str]:
    """`./.env` overlaid by the environment (the services' own precedence)."""
    from_file = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    return from_file | dict(os.environ)


def api_key(config: dict[str, str]) -> str:
    if config.get("STT_API_KEY"):
        return config["STT_API_KEY"].strip()
    listed = [k.strip() for k in config.get("STT_API_KEYS", "").split(",") if k.strip()]
    return key_of_entry(listed[0]) if listed else ""


class ProgressBar:
    """One line on stderr, redrawn with `\\r`: stage, percent of the audio done, a bar."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.last = ""

    def show(self, job: Job) -> None:
        share = 1.0 if job.status == "COMPLETED" else (job.progress or 0.0)
        stage = job.stage or job.status.lower()
        filled = round(share * BAR_WIDTH)
        line = f"{stage:<13}{share:>4.0%} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}]"
        if line != self.last:
            self.out.write("\r" + line.ljust(len(self.last)))
            self.out.flush()
            self.last = line

    def end(self) -> None:
        if self.last:
            self.out.write("\n")
            self.out.flush()
            self.last = ""


def _result(stt: SttClient, job: Job, fmt: str) -> str:
    if fmt == "text":
        return job.transcription or ""
    if fmt == "json":
        return json.dumps(job.model_dump(exclude_none=True), ensure_ascii=False, indent=2)
    return stt.subtitles(job.request_id, "srt" if fmt == "srt" else "vtt").rstrip("\n")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stt transcribe",
        description="Submit a local file (uploaded first) or a media URL; --wait for the result.",
    )
    p.add_argument("media", metavar="FILE_OR_URL", help="a local file, or http(s)/minio/s3 URL")
    p.add_argument("--wait", action="store_true", help="show progress, then print the result")
    p.add_argument("--format", choices=FORMATS, default="text", help="with --wait (default text)")
    p.add_argument("--language", default="vi", help="Whisper code or 'auto' (default vi)")
    p.add_argument("--prompt", help="text the model reads first: names, spelling, style")
    p.add_argument("--hotwords", help="words or phrases the model should expect")
    p.add_argument("--translate", action="store_true", help="the English translation of the speech")
    p.add_argument(
        "--word-timestamps", action="store_true", help="each segment lists its words (json)"
    )
    p.add_argument(
        "--metadata",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="your own context stored with the job (repeatable)",
    )
    p.add_argument(
        "--priority",
        choices=["interactive", "batch"],
        help="the job's lane (default: the API key's tenant's, interactive unless configured)",
    )
    p.add_argument("--request-id", help="default: derived from the media URL, language and options")
    p.add_argument("--deadline", type=float, default=600.0, help="seconds --wait waits (600)")
    p.add_argument("--url", help=f"API base URL (STT_API_URL, default {DEFAULT_URL})")
    p.add_argument("--api-key", help="X-API-Key (STT_API_KEY, or the first of STT_API_KEYS)")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    config = _config()
    base_url = args.url or config.get("STT_API_URL") or DEFAULT_URL
    key = args.api_key or api_key(config)
    is_url = urlsplit(args.media).scheme.lower() in URL_SCHEMES
    if not is_url and not Path(args.media).is_file():
        print(f"stt transcribe: no such file: {args.media}", file=sys.stderr)
        return EXIT_USAGE
    metadata = dict(item.partition("=")[::2] for item in args.metadata)
    if any("=" not in item for item in args.metadata):
        print("stt transcribe: --metadata takes KEY=VALUE", file=sys.stderr)
        return EXIT_USAGE
    bar = ProgressBar(sys.stderr)
    with SttClient(base_url, key) as stt:
        try:
            media_url = args.media
            if not is_url:
                size = Path(args.media).stat().st_size
                print(f"uploading {args.media} ({size} bytes)", file=sys.stderr)
                media_url = stt.upload(args.media)
            options = JobOptions(
                prompt=args.prompt,
                hotwords=args.hotwords,
                task="translate" if args.translate else "transcribe",
                word_timestamps=args.word_timestamps,
            )
            rid = args.request_id or default_request_id(media_url, args.language, options)
            stt.submit(
                rid,
                media_url,
                args.language,
                prompt=options.prompt,
                hotwords=options.hotwords,
                task=options.task,
                word_timestamps=options.word_timestamps,
                metadata=metadata or None,
                priority=args.priority,
            )
            if not args.wait:
                print(rid)
                print(
                    f"curl {base_url.rstrip('/')}/api/v1/transcribe/{rid} "
                    '-H "X-API-Key: $STT_API_KEY"',
                    file=sys.stderr,
                )
                return 0
            job = stt.wait(rid, args.deadline, on_update=bar.show, max_interval=PROGRESS_POLL)
            bar.end()
            print(_result(stt, job, args.format))
            return 0
        except JobFailed as exc:
            bar.end()
            print(f"FAILED: {exc.error}", file=sys.stderr)
            return EXIT_FAILED
        except DeadlineExceeded as exc:
            bar.end()
            print(f"stt transcribe: {exc}", file=sys.stderr)
            return EXIT_DEADLINE
        except (SttError, OSError) as exc:
            bar.end()
            hint = (
                " (--api-key, STT_API_KEY or STT_API_KEYS)"
                if isinstance(exc, AuthenticationError)
                else ""
            )
            print(f"stt transcribe: {exc}{hint}", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:
            bar.end()
            return 130
