"""Local Kafka, Redis and S3 servers for development and tests."""

from stt_local.errors import LocalStackError
from stt_local.ports import free_port, free_ports, port_in_use
from stt_local.server import Server, ServerStatus
from stt_local.stack import Stack, StackConfig

__all__ = [
    "LocalStackError",
    "Server",
    "ServerStatus",
    "Stack",
    "StackConfig",
    "free_port",
    "free_ports",
    "port_in_use",
]
