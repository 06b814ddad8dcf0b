"""`stt schemas [DIR]`: write the public JSON Schemas generated from `stt_common.messages`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stt_common.messages import PUBLIC_SCHEMAS

DEFAULT_DIR = Path("libs/common/schemas")


def render() -> dict[str, str]:
    return {
        f"{name}.schema.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True)
        + "\n"
        for name, model in PUBLIC_SCHEMAS.items()
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stt schemas", description=__doc__)
    parser.add_argument("target", nargs="?", type=Path, default=DEFAULT_DIR, help="output folder")
    target: Path = parser.parse_args(argv).target
    target.mkdir(parents=True, exist_ok=True)
    for filename, text in render().items():
        (target / filename).write_text(text)
        print(target / filename)
    return 0
