"""Every setting of the service, read from the environment and an optional `.env`.

The seed's names (`REDIS_HOST`, `REDIS_PORT`, `REDIS_PASSWORD`, `REDIS_DB`, `REDIS_JOB_TTL`) are
kept exactly; everything else follows the same upper-case style. Each group is its own class so a
process only validates what it uses, and `load()` turns a validation error into one line that
names the variable instead of a traceback.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from stt_common.messages import Lane
from stt_common.tenants import TenantName

ENV_FILE = ".env"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore", env_file_encoding="utf-8")


class RedisSettings(_Base):
    model_config = SettingsConfigDict(env_prefix="REDIS_")

    host: str = "localhost"
    port: int = Field(6379, ge=1, le=65535)
    password: SecretStr | None = None
    db: int = Field(0, ge=0)
    job_ttl: int = Field(
        3600, ge=1, description="Seconds a job stays pollable after its last change"
    )
    ssl: bool = False
    max_connections: int = Field(
        64, ge=1, description="Connections one process opens at most; more requests wait for one"
    )
    pool_timeout: float = Field(
        5.0, gt=0, description="Seconds a request waits for a free connection; then 503"
    )

    @field_validator("password", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


class KafkaSettings(_Base):
    model_config = SettingsConfigDict(env_prefix="KAFKA_")

    bootstrap_servers: str = "localhost:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None

    topic_submit: str = "stt.jobs.submit"
    topic_submit_batch: str | None = Field(
        None,
        description="The batch lane's submit topic (KAFKA_TOPIC_SUBMIT is the interactive lane); "
        "default: KAFKA_TOPIC_SUBMIT + '.batch'",
    )
    lane_batch_min_share: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="Share of a transcriber's time batch work gets while interactive work "
        "waits too (0 = only when no interactive work waits)",
    )
    topic_results: str = "stt.jobs.results"
    topic_status: str = "stt.jobs.status"
    topic_dlq: str = "stt.jobs.dlq"
    topic_partitions: int = Field(12, ge=1, description="Bounds how many transcribers work at once")
    replication_factor: int = Field(1, ge=1)
    submit_retention_ms: int = Field(
        7 * 24 * 3600 * 1000, description="How far back replay reaches"
    )
    status_retention_ms: int = Field(
        7 * 24 * 3600 * 1000,
        ge=3600 * 1000,
        description="How long a job's last state stays on the status topic for --rebuild; "
        "longer than REDIS_JOB_TTL is wasted (rebuild skips expired jobs), shorter loses them",
    )

    retry_delays: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["30s", "5m"],
        description="One retry topic per delay; a transient failure moves to the next one",
    )
    session_timeout_ms: int = Field(
        10_000, ge=1000, description="A dead member's partitions move after this"
    )
    heartbeat_interval_ms: int = Field(3_000, ge=100)
    transcriber_group: str = "stt-transcriber"
    projector_group: str = "stt-projector"
    webhooks_group: str = Field(
        "stt-webhooks", description="Reads the results topic on its own; never delays the others"
    )
    publish_timeout: float = Field(5.0, gt=0, description="Seconds the API waits for acks=all")

    @field_validator("retry_delays", mode="before")
    @classmethod
    def _delays(cls, value: object) -> object:
        value = _split_csv(value)
        for item in value if isinstance(value, list) else []:
            parse_duration(item)
        return value

    def lane_topic(self, lane: Lane) -> str:
        """The submit topic of `lane`."""
        if lane is Lane.BATCH:
            return self.topic_submit_batch or f"{self.topic_submit}.batch"
        return self.topic_submit

    def submit_topics(self) -> tuple[str, str]:
        """Every lane's submit topic, interactive first."""
        return (self.topic_submit, self.lane_topic(Lane.BATCH))

    def retry_topics(self) -> list[tuple[str, float]]:
        """(topic, delay in seconds) for each retry step, in order."""
        prefix = self.topic_submit.removesuffix(".submit")
        return [(f"{prefix}.retry.{d}", parse_duration(d)) for d in self.retry_delays]


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """'30s', '5m', '1h', '7d', '500ms' -> seconds."""
    for unit in ("ms", "s", "m", "h", "d"):
        number = text.removesuffix(unit)
        if number != text and number.replace(".", "", 1).isdigit():
            return float(number) * _UNITS[unit]
    raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h or 7d")


class MinioSettings(_Base):
    model_config = SettingsConfigDict(env_prefix="MINIO_")

    endpoint: str = "localhost:9000"
    access_key: str = ""
    secret_key: SecretStr = SecretStr("")
    bucket: str = "stt-media"
    secure: bool = False
    region: str = "us-east-1"
    allowed_buckets: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Buckets minio:// and s3:// media may name besides MINIO_BUCKET; no other is "
        "read",
    )

    @field_validator("allowed_buckets", mode="before")
    @classmethod
    def _buckets(cls, value: object) -> object:
        return _split_csv(value)

    def readable_buckets(self) -> frozenset[str]:
        """Every bucket media may be read from: MINIO_BUCKET and MINIO_ALLOWED_BUCKETS."""
        return frozenset([self.bucket, *self.allowed_buckets])


class ApiSettings(_Base):
    model_config = SettingsConfigDict(env_prefix="STT_")

    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    api_keys_file: Path | None = Field(
        None, description="A mounted secret: one key per line, '#' comments; merged with api_keys"
    )
    allow_no_auth: bool = Field(False, description="Development only: serve without API keys")
    rate_limit_per_minute: int = Field(
        6000, ge=0, description="Requests per minute per API key, across API processes; 0 = off"
    )
    max_body_bytes: int = Field(16 * 1024, ge=256, description="Larger request bodies get 413")
    max_upload_bytes: int = Field(
        512 * 1024 * 1024, ge=1, description="Largest file POST /api/v1/uploads stores (413 above)"
    )
    upload_min_bytes_per_second: int = Field(
        8 * 1024,
        ge=0,
        description="Slowest average upload rate accepted (judged after STT_UPLOAD_MIN_RATE_GRACE "
        "seconds); slower gets 408; 0 = no minimum",
    )
    upload_min_rate_grace: float = Field(
        10.0, ge=0, description="Seconds an upload may take before its average rate is judged"
    )
    upload_timeout: float = Field(
        1800.0, gt=0, description="Seconds one upload may take in all; then 408"
    )
    uploads_per_key: int = Field(
        4, ge=1, description="Uploads one API key may have in progress at once, per API process"
    )
    uploads_max_active: int = Field(
        64,
        ge=1,
        description="Uploads one API process serves at once (each buffers up to 8 MiB); then 503",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    submit_ttl_before_publish: int = Field(
        60, ge=5, description="TTL of the PROCESSING record until its submit event is acknowledged"
    )
    poll_rtf: float = Field(
        0.15, gt=0, description="Transcribers' seconds of work per second of audio (poll hints)"
    )
    poll_hold_seconds: float = Field(
        5.0,
        ge=0,
        le=8,
        description="A poll of a transcribing job whose ETA is at most this far off is held "
        "until the job ends, at most this long (a client polling at fixed intervals then sees "
        "the result at once); 0 = answer every poll at once; at most 8, under the integration "
        "guide's 10 s request timeout",
    )
    openai_wait_seconds: float = Field(
        600.0,
        gt=0,
        le=3600,
        description="Longest a /v1/audio request waits for its job; then 504 naming the job, "
        "which stays pollable on /api/v1/transcribe",
    )

    lane_defaults: Annotated[dict[TenantName, Lane], NoDecode] = Field(
        default_factory=dict,
        description="tenant:lane pairs, comma-separated: the priority of a submit that names "
        "none (interactive for tenants not listed)",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("lane_defaults", mode="before")
    @classmethod
    def _lanes(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs = {}
        for item in value.split(","):
            if not item.strip():
                continue
            tenant, sep, lane = item.partition(":")
            if not sep:
                raise ValueError(f"{item!r} is not tenant:lane (lane interactive or batch)")
            pairs[tenant.strip()] = lane.strip()
        return pairs

    def lane_of(self, tenant: str) -> Lane:
        """The lane a submit of `tenant` goes to when it names none."""
        return self.lane_defaults.get(tenant, Lane.INTERACTIVE)

    @field_validator("api_keys_file", mode="before")
    @classmethod
    def _no_file(cls, value: object) -> object:
        return None if value == "" else value


class ModelSettings(_Base):
    model_config = SettingsConfigDict(env_prefix="STT_")

    engine: Literal["whisper", "fake"] = Field(
        "whisper", description="'fake' skips the model (benchmarks of the pipeline itself)"
    )
    fake_delay: float = Field(0.0, ge=0, description="Seconds the fake engine takes per job")
    model: str = Field(
        "base", description="A directory with a CTranslate2 Whisper model, or a name"
    )
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = Field(0, ge=0, description="0 lets CTranslate2 pick")
    beam_size: int = Field(5, ge=1, le=20)
    vad_filter: bool = Field(
        True,
        description="Give the model only what Silero VAD finds voiced: silence, music and noise "
        "are skipped (no invented text, less work); off, the model hears everything",
    )
    vad_threshold: float = Field(
        0.35,
        gt=0,
        lt=1,
        description="Silero speech probability from which a 32 ms frame is voiced (0.5 is "
        "faster-whisper's default: it missed words under music at 0 dB; no kind of the quality "
        "bench's non-speech set but babble reaches 0.3)",
    )
    vad_pad_ms: int = Field(
        3000,
        ge=0,
        le=5000,
        description="Milliseconds of audio kept on each side of a voiced chunk: non-speech "
        "shorter than twice this (than this at the start) is heard whole, so under loud music "
        "or noise the model hears speech whole where the VAD's edges fall inside words or miss "
        "its end",
    )
    vad_pad_before_ms: int = Field(
        400,
        ge=0,
        le=5000,
        description="Where longer non-speech is cut out, the milliseconds of its end kept before "
        "the speech (at most STT_VAD_PAD_MS): with 1.5 s or more of a music intro before speech "
        "the model invented words over it; 400 is faster-whisper's own padding",
    )
    window_seconds: float = Field(
        300.0,
        ge=30,
        description="Longest piece of audio given to the model at once (cut at a pause): "
        "bounds the memory of long files; a shorter file goes in whole",
    )
    batch_size: int = Field(
        0,
        ge=0,
        description="0 = sequential decoding; N > 0 = faster-whisper's BatchedInferencePipeline, "
        "N chunks of <= 30 s (cut by its Silero VAD) at once: faster on many cores or a GPU, "
        "more memory, the text may differ slightly (chunks do not see each other's text) and "
        "each chunk is one segment",
    )
    cache_dir: Path = Path(".cache")
    language_mismatch: Literal["keep", "detect"] = Field(
        "keep",
        description="keep = transcribe in the requested language and flag a confident "
        "mismatch (language_mismatch); detect = transcribe in the detected language when it "
        "is confidently another one (one more encoder pass over 30 s of voiced audio)",
    )
    language_mismatch_probability: float = Field(
        0.8, gt=0, le=1, description="Detection probability from which a mismatch is confident"
    )
    condition_on_previous_text: bool = Field(
        False,
        description="Give each 30 s chunk inside a window the text before it as its prompt "
        "(faster-whisper's default, true): with repetitive speech it led the model into a loop "
        "and temperature fallbacks (an RTF of 1.1 instead of 0.1 on the quality bench); off, "
        "windows still get the previous window's last tokens",
    )
    hallucination_filter: bool = Field(
        True,
        description="Cut looping n-grams and drop known hallucination phrases spoken over "
        "audio without speech (stt_transcriber/hallucinations.json)",
    )
    cross_job_batch: int = Field(
        1,
        ge=1,
        le=64,
        description="Most <= 30 s clips (of one or several jobs) one transcriber runs through "
        "the model in one batched call: files up to STT_BATCH_MAX_SECONDS without word "
        "timestamps; 1 = one job at a time",
    )
    batch_wait_ms: int = Field(
        200,
        ge=0,
        le=10_000,
        description="Longest a batch waits for jobs already taken and still downloading or "
        "decoding; a lone job never waits",
    )
    batch_max_seconds: float = Field(
        120.0,
        gt=0,
        description="Longer files take the windowed path alone, between batches",
    )


class FetchSettings(_Base):
    model_config = SettingsConfigDict(env_prefix="STT_FETCH_")

    max_bytes: int = Field(512 * 1024 * 1024, ge=1)
    max_audio_seconds: float = Field(4 * 3600, gt=0)
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(30.0, gt=0)
    total_timeout: float = Field(600.0, gt=0)
    min_bytes_per_second: int = Field(
        16 * 1024,
        ge=0,
        description="Slowest average download rate accepted, judged once STT_FETCH_MIN_RATE_GRACE "
        "seconds have passed; slower fails the job without retry; 0 = no minimum",
    )
    min_rate_grace: float = Field(
        10.0, ge=0, description="Seconds a download may take before its average rate is judged"
    )
    max_redirects: int = Field(5, ge=0, le=20)
    allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Private hosts or networks that may be fetched (MinIO's always is)",
    )

    @field_validator("allow_hosts", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)


class WebhookSettings(_Base):
    """`stt webhooks`: the signed POST of a job's final status to its `callback_url`."""

    # Fields read STT_WEBHOOK_<FIELD>; the one exception names its own variable.
    model_config = SettingsConfigDict(env_prefix="STT_WEBHOOK_", populate_by_name=True)

    secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key of the X-STT-Signature header"
    )
    allow_unsigned: bool = Field(
        False,
        validation_alias="STT_ALLOW_UNSIGNED_WEBHOOKS",
        description="Development only: deliver without a signature when no secret is set",
    )
    allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Private hosts or networks callbacks may go to (separate from the fetch list)",
    )
    retry_seconds: float = Field(
        3600.0, gt=0, description="Retries stop this long after the result; then dead-lettered"
    )
    backoff: float = Field(1.0, gt=0, description="First retry delay; doubles each try")
    backoff_max: float = Field(300.0, gt=0, description="Longest delay between tries")
    connect_timeout: float = Field(5.0, gt=0)
    timeout: float = Field(10.0, gt=0, description="Seconds one delivery attempt may take")
    concurrency: int = Field(32, ge=1, description="POSTs in progress at once")
    max_pending: int = Field(
        1000, ge=1, description="Deliveries held at once (retries included); then reading pauses"
    )

    @field_validator("allow_hosts", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("secret", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


class WorkerSettings(_Base):
    model_config = SettingsConfigDict(env_prefix="STT_WORKER_")

    id: str = ""
    shutdown_grace: float = Field(
        30.0, ge=0, description="Seconds SIGTERM waits for the current job"
    )
    work_dir: Path = Path("/tmp/stt-work")
    claim_lease: float = Field(
        30.0, ge=1, description="Seconds a job's claim outlives a worker that stops renewing it"
    )


class MetricsSettings(_Base):
    model_config = SettingsConfigDict(env_prefix="STT_METRICS_")

    port: int = Field(0, ge=0, le=65535, description="Transcriber/projector /metrics port; 0 = off")
    host: str = "0.0.0.0"
    lag_every: float = Field(
        15.0, gt=0, description="Seconds between the projector's reads of every group's lag"
    )


class LocalStackSettings(_Base):
    """`stt local up` only: where its Prometheus and the workers' /metrics listen."""

    model_config = SettingsConfigDict(env_prefix="STT_LOCAL_")

    prometheus_port: int = Field(
        9490, ge=1, le=65535, description="The local Prometheus (not the system's 9090)"
    )
    metrics_port: int = Field(
        9491,
        ge=1,
        le=65533,
        description="/metrics of the projector; the transcriber and webhooks take +1 and +2",
    )


class Settings:
    """All groups, each validated on first use."""

    @cached_property
    def redis(self) -> RedisSettings:
        return load(RedisSettings)

    @cached_property
    def kafka(self) -> KafkaSettings:
        return load(KafkaSettings)

    @cached_property
    def minio(self) -> MinioSettings:
        return load(MinioSettings)

    @cached_property
    def api(self) -> ApiSettings:
        return load(ApiSettings)

    @cached_property
    def model(self) -> ModelSettings:
        return load(ModelSettings)

    @cached_property
    def fetch(self) -> FetchSettings:
        return load(FetchSettings)

    @cached_property
    def webhooks(self) -> WebhookSettings:
        return load(WebhookSettings)

    @cached_property
    def worker(self) -> WorkerSettings:
        return load(WorkerSettings)

    @cached_property
    def metrics(self) -> MetricsSettings:
        return load(MetricsSettings)


class SettingsError(SystemExit):
    """A bad setting: exits the process (status 1) printing one readable line."""


S = TypeVar("S", bound=BaseSettings)


def env_name(cls: type[BaseSettings], field: str) -> str:
    """The environment variable `cls.field` is read from: its own alias, or prefix + name."""
    info = cls.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias.upper()
    return (str(cls.model_config.get("env_prefix", "")) + field).upper()


def load(cls: type[S]) -> S:
    try:
        return cls()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            head, *rest = (str(p) for p in err["loc"])
            # A field read through its alias is located by the alias itself.
            name = env_name(cls, head) if head in cls.model_fields else head.upper()
            lines.append(f"invalid setting {'.'.join([name, *rest])}: {err['msg']}")
        raise SettingsError("; ".join(lines)) from None
