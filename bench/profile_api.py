"""`python -m bench.profile_api OUT.prof [stt api args]`: `stt api` with cProfile switched on by
SIGUSR1 and off (profile written to OUT.prof) by SIGUSR2, so that start-up is left out and only
the requests sent in between are profiled.
"""

from __future__ import annotations

import cProfile
import signal
import sys
from pathlib import Path

from stt_cli.main import main


def run() -> int:
    out, args = sys.argv[1], sys.argv[2:]
    profile = cProfile.Profile()

    def start(*_: object) -> None:
        profile.enable()

    def stop(*_: object) -> None:
        profile.disable()
        profile.dump_stats(out + ".part")
        Path(out + ".part").replace(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    # uvicorn re-raises the SIGTERM it stopped on once it is done; exit quietly instead.
    signal.signal(signal.SIGTERM, lambda *_: None)
    return main(["api", *args])


if __name__ == "__main__":
    sys.exit(run())
