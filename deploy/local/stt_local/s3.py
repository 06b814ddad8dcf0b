"""An S3-compatible server: S3Proxy with its filesystem backend, checked with the minio client."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from stt_local.errors import LocalStackError
from stt_local.files import write_private
from stt_local.ports import HOST, can_connect
from stt_local.server import Server
from stt_local.tools import ensure_jars, require_tool

if TYPE_CHECKING:
    from minio import Minio

LOGBACK = """\
<configuration>
  <appender name="OUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level %logger{36} - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.gaul.s3proxy" level="INFO"/>
  <root level="WARN"><appender-ref ref="OUT"/></root>
</configuration>
"""

_AUTH_ERRORS = {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"}


class S3Server(Server):
    name = "s3"
    stop_timeout = 15.0

    def __init__(
        self,
        state_dir: Path,
        cache_dir: Path,
        port: int,
        access_key: str,
        secret_key: str,
        bucket: str,
        host: str = HOST,
    ) -> None:
        super().__init__(state_dir, port, host)
        self.jars = cache_dir / "s3proxy-jars"
        self.access_key = access_key
        self.secret_key = secret_key
        self.bucket = bucket
        self.config = self.dir / "s3proxy.properties"
        self.data = self.dir / "data"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def marker(self) -> str:
        return str(self.config)

    def s3proxy_properties(self) -> str:
        # filesystem-nio2 is S3Proxy's own backend; no virtual-host so path-style presigned
        # URLs from the minio client verify.
        return "\n".join([
            f"s3proxy.endpoint=http://{self.endpoint}",
            "s3proxy.authorization=aws-v2-or-v4",
            f"s3proxy.identity={self.access_key}",
            f"s3proxy.credential={self.secret_key}",
            "jclouds.provider=filesystem-nio2",
            f"jclouds.filesystem.basedir={self.data}",
            f"jclouds.identity={self.access_key}",
            f"jclouds.credential={self.secret_key}",
            "",
        ])  # fmt: skip

    def prepare(self) -> None:
        if not self.access_key or not self.secret_key:
            raise LocalStackError(
                "MINIO_ACCESS_KEY and MINIO_SECRET_KEY must be set for the S3 server"
            )
        require_tool("java")
        ensure_jars("s3proxy-pom.xml", self.jars)
        self.data.mkdir(parents=True, exist_ok=True)
        write_private(self.config, self.s3proxy_properties())  # holds the secret key
        (self.dir / "logback.xml").write_text(LOGBACK)

    def command(self) -> list[str]:
        return [
            require_tool("java"), "-Xms64m", "-Xmx256m", "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
            f"-Dlogback.configurationFile={self.dir / 'logback.xml'}",
            "-cp", f"{self.jars}/*", "org.gaul.s3proxy.Main", "--properties", str(self.config),
        ]  # fmt: skip

    def client(self, timeout: float = 3.0) -> Minio:
        import urllib3
        from minio import Minio

        http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout), retries=False)
        return Minio(
            self.endpoint, access_key=self.access_key, secret_key=self.secret_key,
            secure=False, region="us-east-1", http_client=http,
        )  # fmt: skip

    def check(self, timeout: float = 3.0) -> None:
        from minio.error import S3Error

        if not can_connect(self.port, self.host, timeout):
            raise ConnectionError(f"nothing listens on {self.endpoint}")
        try:
            self.client(timeout).list_buckets()
        except S3Error as exc:
            if exc.code in _AUTH_ERRORS:
                raise LocalStackError(
                    f"the S3 server on {self.endpoint} rejected the credentials ({exc.code}): "
                    "MINIO_ACCESS_KEY/MINIO_SECRET_KEY do not match the running server; run "
                    "`stt local down` and start again"
                ) from None
            raise

    def after_healthy(self) -> None:
        client = self.client()
        try:
            if not client.bucket_exists(self.bucket):
                client.make_bucket(self.bucket)
        except ValueError as exc:
            raise LocalStackError(f"MINIO_BUCKET={self.bucket!r}: {exc}") from None
