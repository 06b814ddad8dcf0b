"""`stt <command> ...`: dispatches to each service's own `main(argv)`, imported only when used."""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "api": ("stt_api.main", "serve the HTTP API"),
    "transcriber": ("stt_transcriber.main", "run a transcriber worker (consumer group member)"),
    "projector": ("stt_projector.main", "project job states into Redis; --rebuild restores them"),
    "webhooks": ("stt_webhooks.main", "POST final job states to their callback_url (signed)"),
    "transcribe": ("stt_cli.transcribe", "submit a file or URL; --wait prints the result"),
    "jobs": ("stt_cli.jobs", "list your jobs (--status, --since) or show one"),
    "replay": ("stt_cli.replay", "re-publish jobs from the dead-letter or submit topic"),
    "topics": ("stt_cli.topics", "create the Kafka topics"),
    "uploads": ("stt_cli.uploads", "prune: delete uploaded media older than the replay window"),
    "schemas": ("stt_cli.schemas", "write the JSON Schemas of the events"),
    "local": ("stt_local.cli", "local stack without Docker: up | down | status"),
    "models": ("stt_cli.models", "offline model: fetch"),
}


def usage() -> str:
    lines = ["usage: stt <command> [args]", "", "commands:"]
    lines += [f"  {name:<12} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] not in COMMANDS:
        print(f"stt: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[args[0]][0])
    result: int = module.main(args[1:])
    return result


if __name__ == "__main__":
    sys.exit(main())
