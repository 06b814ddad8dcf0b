"""The test and benchmark harness: the real servers on free loopback ports (`infra`), the
services as subprocesses (`processes`), speech and its scoring (`speech`), Kafka helpers
(`kafka_tools`), a local media server (`media_server`), and in-process fakes of the broker
clients for the fast tier (`fakes`).

Used by `tests/` and `bench/`; never imported by product code (checked by `lint-imports`).
"""
