"""`stt topics`: create the topics with their partition counts and configs (idempotent)."""

from __future__ import annotations

import argparse
import asyncio

from stt_common import bus
from stt_common.settings import Settings


def main(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="stt topics", description=__doc__).parse_args(argv)
    settings = Settings().kafka
    asyncio.run(bus.ensure_topics(settings))
    for spec in bus.topic_specs(settings):
        print(f"{spec.name} partitions={spec.num_partitions}")
    return 0
