"""The service's one settings object, in groups.

Built once (from environment variables, a ``.env`` file, or CLI flags) and passed to
:func:`audio_service.app.create_app`. Nothing reads settings from a global.

Names: the field ``streaming.max_batch`` is the environment variable ``AUDIO_SERVICE_STREAMING__MAX_BATCH``
(prefix, group and field upper-cased, ``__`` between group and field) and the flag ``--streaming.max-batch``.
Each field also accepts its flat name of a single-level layout (``AUDIO_SERVICE_STREAM_MAX_BATCH``: the
group's ``flat_prefix`` before the field name, or the field's own ``flat_name``), with a warning naming the
grouped variable; the grouped variable wins when both are set (:func:`flat_names`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    CliImplicitFlag,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

log = logging.getLogger(__name__)

ENV_PREFIX = "AUDIO_SERVICE_"
NESTED = "__"
# URI schemes of a Redis storage (quotas.storage, jobs.storage)
REDIS_SCHEMES = ("redis", "rediss", "unix")

DEFAULT_MODELS: dict[str, str] = {
    # model id -> source: "packaged:<name>", a hub id (e.g. "Systran/faster-whisper-large-v3") or a local directory
    "whisper-base": "packaged:whisper-base",
    "whisper-tiny.en": "packaged:whisper-tiny.en",
}
DEFAULT_ALIASES: dict[str, str] = {
    # names clients send (the reference API's and OpenAI's) -> model id
    "whisper-v3": "whisper-base",
    "whisper-v3-turbo": "whisper-base",
    "whisper-1": "whisper-base",
}
DEFAULT_ALIGNERS: dict[str, str] = {
    # aligner names clients send (the reference API's) -> aligners this server has (pipeline/align.py);
    # "a|b" = the first available, so mms_fa upgrades itself when its weights are installed
    "mms_fa": "mms_fa|whisper",
    "tdnn_ffn": "whisper",
    "gentle": "whisper",
    "whisper": "whisper",
}
DEFAULT_DIARIZERS: dict[str, str] = {
    "pyannote": "offline",
    "pyannote-offline": "offline",
    "community-1": "community-1",
    "pyannote/speaker-diarization-community-1": "community-1",
}


def flat(name: str) -> dict[str, Any]:
    """``json_schema_extra`` of a field whose flat name is not its group's ``flat_prefix`` + its name."""
    return {"flat_name": name}


class Group(BaseModel):
    """One group of settings. A misspelt field in a group fails at load instead of being ignored."""

    model_config = ConfigDict(extra="forbid")
    # the prefix its fields had in the flat layout (``stream_`` for streaming), see flat_names()
    flat_prefix: ClassVar[str] = ""


BACKLOG_OVER_SEGMENT_S = 5.0  # see StreamingSettings._backlog_holds_a_segment


class ServerSettings(Group):
    """The HTTP server: network, request limits and timeouts, logs, shutdown."""

    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port to listen on.")
    log_level: str = Field("info", description="Log level (debug, info, warning, error).")
    log_format: Literal["text", "json"] = Field("text", description="Log line format: text, or one JSON object per line.")
    replica_name: str = Field(
        "", description="Sent as x-audio-service-replica on every response; empty = <hostname>:<pid> (under Ray: the replica id)."
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description=(
            "Also serve /metrics on this port of server.host (0 = only on the main port). Under Ray Serve replica k of a node "
            "uses this port + k, so Prometheus scrapes every replica (through the Serve proxy, /metrics reaches one replica "
            "at a time)."
        ),
    )
    max_upload_bytes: int = Field(1 << 30, ge=1, description="Largest accepted upload or fetched URL, in bytes (413 above).")
    url_fetch_allowlist: list[str] = Field(
        default_factory=list,
        description="Hosts or CIDR ranges that URL inputs may reach even if private/loopback (JSON list).",
    )
    url_fetch_timeout_s: float = Field(
        30.0, gt=0, description="Deadline (s) for the whole download of an audio URL, redirects included (400 when exceeded)."
    )
    request_header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A request's line and headers must arrive within this (s) or the connection gets 408 and is closed.",
    )
    upload_idle_timeout_s: float = Field(
        30.0, gt=0, description="Longest pause (s) while a request body is being received; longer gets 408."
    )
    upload_timeout_s: float = Field(
        900.0, gt=0, description="The whole request body must arrive within this (s); later gets 408."
    )
    shutdown_grace_s: float = Field(
        60.0, ge=0, description="On SIGTERM: how long in-flight requests and stream flushes may take before the server exits."
    )


class AuthSettings(Group):
    """Who may call: API keys given inline or in a keys file."""

    api_keys: list[SecretStr] = Field(default_factory=list, description="Accepted API keys (JSON list); empty = open server.")
    keys_file: Path | None = Field(
        None,
        description="JSON keys file: named keys stored as SHA-256 hashes, with optional per-key limits (audio-service keys add).",
    )


class ModelSettings(Group):
    """Which Whisper models exist, where they come from, and how they run."""

    sources: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_MODELS),
        description='Model table as JSON: id -> "packaged:<name>", hub id, or local directory.',
        json_schema_extra=flat("models"),
    )
    aliases: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ALIASES), description="Model aliases as JSON: name -> model id."
    )
    default: str = Field(
        "whisper-base", description="Model used when a request names none.", json_schema_extra=flat("default_model")
    )
    preload: list[str] = Field(
        default_factory=lambda: ["whisper-base"],
        description="Models loaded at start-up (JSON list).",
        json_schema_extra=flat("preload_models"),
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "audio-service",
        description="Where packaged models are assembled and hub models cached.",
        json_schema_extra=flat("model_cache_dir"),
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Inference device; auto picks CUDA when present.")
    compute_type: str = Field("auto", description="CTranslate2 compute type; auto = int8 on CPU, float16 on CUDA.")
    cpu_threads: int = Field(
        0,
        ge=0,
        description=(
            "CPU threads per model call, CTranslate2 and torch alike (0 = all cores; a Ray Serve replica: its ray.num_cpus)."
        ),
    )
    blas_threads: int = Field(
        1,
        ge=0,
        description=(
            "Threads of numpy's BLAS in the server process (0 = its default: one per core, busy-waiting after every call)."
        ),
    )

    @field_validator("cache_dir")
    @classmethod
    def _expand_user(cls, value: Path) -> Path:
        return value.expanduser()


class BatchSettings(Group):
    """File transcription (the HTTP batch endpoints)."""

    flat_prefix: ClassVar[str] = "batch_"

    decoder: Literal["sequential", "batched"] = Field(
        "sequential",
        description=(
            "How batch requests decode: sequential = faster-whisper's transcribe loop (previous-text context, "
            "temperature fallback; the accuracy of faster-whisper run directly); batched = windows decoded in "
            "batches like its BatchedInferencePipeline (several times faster on a GPU, a little less accurate)."
        ),
    )
    size: int = Field(8, ge=1, description="Windows decoded per model call when batch.decoder=batched.")
    block_s: float = Field(
        600.0,
        gt=0,
        description="Long files are decoded and transcribed in blocks of about this many seconds (bounded memory).",
    )
    beam_size: int = Field(5, ge=1, le=32, description="Beam size for batch decoding.", json_schema_extra=flat("beam_size"))
    workers: int = Field(
        1, ge=1, description="Batch requests run at once (each in a worker thread).", json_schema_extra=flat("inference_workers")
    )
    max_queued_requests: int = Field(
        16,
        ge=0,
        description=(
            "Batch requests that may wait for a worker (in the whole deployment with a redis:// quotas.storage); more get 429."
        ),
        json_schema_extra=flat("max_queued_requests"),
    )
    retry_after_s: int = Field(
        5, ge=1, description="Retry-After seconds sent with 429 when no worker is free.", json_schema_extra=flat("retry_after_s")
    )


class StreamingSettings(Group):
    """Live transcription over WebSocket."""

    flat_prefix: ClassVar[str] = "stream_"

    cpu_threads: int = Field(
        1,
        ge=0,
        description=(
            "CPU threads per streaming model call, on a CPU (0 = models.cpu_threads); streams then share their own instance of "
            "each model."
        ),
    )
    workers: int = Field(
        0,
        ge=0,
        description=(
            "Streaming model calls run at once (0 = cores / streaming.cpu_threads on a CPU, a Ray replica counting "
            "ray.num_cpus as its cores; 1 on a GPU)."
        ),
    )
    max_frame_bytes: int = Field(64000, ge=2, description="Largest binary frame accepted (bytes; 64000 = 2 s of PCM16).")
    idle_timeout_s: float = Field(300.0, gt=0, description="Close a stream after this long with no frame at all.")
    send_timeout_s: float = Field(
        30.0, gt=0, description="A client that takes no message for this long (s) while messages wait is closed with 1008."
    )
    batching: bool | Literal["auto"] = Field(
        "auto",
        description=(
            "Batch decode work of several streams into one model call; auto = on a GPU only (on a 2-core CPU, one "
            "single-threaded call per core served more streams)."
        ),
    )
    max_batch: int = Field(8, ge=1, description="Most stream windows decoded in one batched model call.")
    partial_batch_audio_s: float = Field(
        40.0, gt=0, description="A batch of partial re-decodes stops growing at this much audio, so due final passes wait little."
    )
    endpoint_silence_ms: int = Field(
        500,
        ge=0,
        description="Silence (ms) that ends a speech segment and makes it final; vad_kwargs.min_silence_duration_ms overrides.",
    )
    short_segment_s: float = Field(
        2.0,
        ge=0,
        description="Segments with less speech than this wait for streaming.short_endpoint_s of silence (context helps Whisper).",
    )
    short_endpoint_s: float = Field(
        1.5, ge=0, description="Endpoint silence (s) for short segments; see streaming.short_segment_s."
    )
    vad_threshold: float = Field(0.5, gt=0, lt=1, description="Silero speech probability above which a window is speech.")
    speech_pad_ms: int = Field(200, ge=0, description="Audio kept before and after detected speech in a segment (ms).")
    max_segment_s: float = Field(
        15.0,
        ge=1.0,
        le=28.0,
        description="Longest segment; longer speech is cut at its quietest recent point (a decode window holds 30 s).",
    )
    partial_interval_s: float = Field(
        0.5,
        gt=0,
        description=(
            "New audio (s) before the open segment is re-decoded; none over silence, and up to 3x longer while streams wait "
            "for the model."
        ),
    )
    text_timeout_s: float = Field(
        5.0, ge=1.0, le=29.0, description="Default text_timeout_seconds: speech with no new text for this long is made final."
    )
    max_backlog_s: float = Field(
        60.0,
        gt=0,
        description=(
            "Audio (s) a stream may hold untranscribed before its socket is no longer read, and 10 s more before it "
            "is closed with 1013 (bounds memory); at least max_segment_s + 5."
        ),
    )
    final_beam_size: int = Field(5, ge=1, le=32, description="Beam size of the final pass over each segment.")
    partial_model: str = Field(
        "whisper-tiny.en",
        description=(
            "Cheaper model for partial hypotheses (an English-only one: English streams only); finals use the stream's model. "
            "Empty = the stream's model."
        ),
    )
    commit_words: bool = Field(
        False,
        description=(
            "Make words of a segment final while the speaker goes on, when two consecutive hypotheses agree on them (partials "
            "then take turns on the stream's model and streaming.partial_model, every streaming.commit_interval_s). Off: words "
            "become final with their segment. Not with diarize or without word timestamps; only in streams of "
            "streaming.commit_languages."
        ),
    )
    commit_interval_s: float = Field(
        0.4,
        gt=0,
        description=(
            "streaming.partial_interval_s of a segment that commits words: shorter is lower commit lag for more CPU "
            "(measured on jfk, one stream: see the benchmarks page)."
        ),
    )
    commit_languages: str = Field(
        "en",
        description=(
            "Comma-separated languages whose streams commit words (streaming.commit_words), once the stream's language is "
            "known; * = every language. Measured: English kept its WER, German and French did not (the greedy hypotheses "
            "agree on more errors)."
        ),
    )
    speaker_context_s: float = Field(
        40.0, gt=0, description="Streaming diarization: seconds of past final segments re-diarized with each new one."
    )

    @model_validator(mode="after")
    def _backlog_holds_a_segment(self) -> StreamingSettings:
        # The socket is not read while a stream holds max_backlog_s untranscribed, and the open segment
        # is part of that: a segment must reach max_segment_s (where it is cut and transcribed) plus the
        # audio its final pass may wait for after the cut, or the stream stops for good.
        if self.max_backlog_s < self.max_segment_s + BACKLOG_OVER_SEGMENT_S:
            raise ValueError(
                f"streaming.max_backlog_s ({self.max_backlog_s:g}) must be at least streaming.max_segment_s "
                f"({self.max_segment_s:g}) + {BACKLOG_OVER_SEGMENT_S:g} s: a stream would stop reading before its "
                "open segment can be cut"
            )
        return self


class QuotaSettings(Group):
    """Per-key limits and where their counters live."""

    requests_per_minute: int = Field(
        6000,
        ge=0,
        description="HTTP requests per minute per key (all anonymous callers together on an open server); 0 = unlimited.",
    )
    audio_seconds_per_minute: float = Field(
        12000.0,
        ge=0,
        description="Audio seconds per minute per key, batch and streaming together (200 audio minutes); 0 = unlimited.",
    )
    max_streams_per_key: int = Field(10, ge=1, description="Concurrent WebSocket streams per API key (or per server when open).")
    storage: str = Field(
        "memory://",
        description=(
            "Where quota counters, stream counts and the batch waiting room live: memory:// (per process) or "
            "redis://host:port/db (shared by every process of a deployment)."
        ),
        json_schema_extra=flat("rate_limit_storage"),
    )
    lease_s: float = Field(
        30.0,
        ge=1.0,
        description=(
            "With a redis:// quotas.storage, a stream or waiting request counts until this long after its replica's last "
            "heartbeat."
        ),
        json_schema_extra=flat("stream_lease_s"),
    )


class RaySettings(Group):
    """Scale-out on Ray Serve (the ray extra; audio_service/scale/ray_serve.py)."""

    flat_prefix: ClassVar[str] = "ray_"

    enabled: CliImplicitFlag[bool] = Field(
        False,
        description="serve: run as a Ray Serve deployment of ray.replicas replicas instead of one process.",
        json_schema_extra=flat("ray"),
    )
    address: str | None = Field(
        None, description="Ray cluster to join (host:port or ray://...); unset = RAY_ADDRESS, else a local cluster is started."
    )
    replicas: int = Field(
        1,
        ge=1,
        description="Replicas of the service, each with its own models (ray.autoscaling overrides).",
        json_schema_extra=flat("replicas"),
    )
    num_cpus: float = Field(1.0, gt=0, description="Logical CPUs reserved per replica.")
    num_gpus: float | None = Field(
        None,
        ge=0,
        description="GPUs per replica (0.5 = two share one); unset = 1 when models.device is not cpu and the cluster has GPUs.",
    )
    autoscaling: dict[str, float] | None = Field(
        None,
        description=(
            'Serve autoscaling config as JSON, e.g. {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 8}.'
        ),
    )
    max_ongoing_requests: int = Field(
        100,
        ge=1,
        description="Requests and streams routed to one replica at once (the service's own limits apply below it).",
    )
    fanout_block_s: float = Field(
        120.0,
        ge=0,
        description=(
            "A batch file longer than this is cut (at pauses) into blocks of about this length, transcribed on several "
            "replicas at once; 0 = off."
        ),
    )


class AlignmentSettings(Group):
    """Word alignment (/v1/audio/alignments and word timestamps)."""

    aligners: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ALIGNERS),
        description='Aligner aliases as JSON: name a client sends -> aligner ("whisper" or "mms_fa").',
    )
    default: str = Field(
        "tdnn_ffn", description="Aligner name used when a request names none.", json_schema_extra=flat("default_aligner")
    )
    mms_fa_dir: Path | None = Field(
        None, description="Directory holding torchaudio's MMS_FA checkpoint (model.pt); enables the real mms_fa aligner."
    )


class DiarizationSettings(Group):
    """Speaker diarization (pyannote)."""

    diarizers: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_DIARIZERS),
        description='Diarizer aliases as JSON: name a client sends -> "offline" or "community-1".',
    )
    default: str = Field(
        "pyannote", description="diarization_model used when a request names none.", json_schema_extra=flat("default_diarizer")
    )
    hub_token: SecretStr | None = Field(None, description="Model hub token; enables pyannote speaker-diarization-community-1.")
    pipeline_dir: Path | None = Field(
        None,
        description="Local copy of pyannote speaker-diarization-community-1 (used instead of the hub).",
        json_schema_extra=flat("diarization_pipeline_dir"),
    )


class JobsSettings(Group):
    """Long transcription jobs (``/v1/audio/transcriptions/jobs``) and their callbacks."""

    flat_prefix: ClassVar[str] = "jobs_"

    storage: str = Field(
        "",
        description=(
            "Where jobs, their queue and their uploaded audio live: disk (jobs.dir, one process) or redis://host:port/db "
            "(shared by every replica: any of them runs a job, one at a time); empty = Redis when quotas.storage is a "
            "redis:// URI, else disk."
        ),
    )
    dir: Path | None = Field(
        None,
        description=(
            "With disk storage: where job records and their uploaded audio are kept (survive restarts); "
            "default: <models.cache_dir>/jobs."
        ),
    )
    lease_s: float = Field(
        30.0,
        ge=1.0,
        le=3600,
        description=(
            "A running job is its replica's until this long after the replica's last heartbeat (every third of it); "
            "then another replica sharing the Redis storage queues it again."
        ),
    )
    retention_s: float = Field(
        604800.0, ge=1, description="Records of ended jobs are deleted this long after they end (default 7 days)."
    )
    callback_secret: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key that signs callbacks (X-Audio-Service-Signature); unset = callbacks are sent unsigned.",
    )
    callback_attempts: int = Field(5, ge=1, le=20, description="Delivery attempts of a callback (connection errors and 5xx).")
    callback_backoff_s: float = Field(
        1.0, gt=0, le=600, description="Wait before the second attempt of a callback; doubled before each further one."
    )
    callback_timeout_s: float = Field(10.0, gt=0, le=300, description="Timeout of one callback attempt, seconds.")

    @field_validator("dir")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @field_validator("storage")
    @classmethod
    def _storage_uri(cls, value: str) -> str:
        value = value.strip()
        if value not in ("", "disk") and value.split("://", 1)[0] not in REDIS_SCHEMES:
            raise ValueError("jobs.storage is empty, disk, or a redis://, rediss:// or unix:// URI")
        return value


class Settings(BaseSettings):
    """Every knob of the server, in groups. Environment: ``AUDIO_SERVICE_<GROUP>__<FIELD>``; CLI: ``--<group>.<field-name>``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED, env_file=".env", extra="ignore")

    server: ServerSettings = Field(default_factory=ServerSettings, description="The HTTP server.")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="API keys.")
    models: ModelSettings = Field(default_factory=ModelSettings, description="Whisper models.")
    batch: BatchSettings = Field(default_factory=BatchSettings, description="File transcription.")
    streaming: StreamingSettings = Field(default_factory=StreamingSettings, description="Live transcription.")
    quotas: QuotaSettings = Field(default_factory=QuotaSettings, description="Per-key limits.")
    ray: RaySettings = Field(default_factory=RaySettings, description="Scale-out on Ray Serve.")
    alignment: AlignmentSettings = Field(default_factory=AlignmentSettings, description="Word alignment.")
    diarization: DiarizationSettings = Field(default_factory=DiarizationSettings, description="Speaker diarization.")
    jobs: JobsSettings = Field(default_factory=JobsSettings, description="Long transcription jobs and callbacks.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # grouped names first (environment over .env), then the flat names, so a grouped name wins
        return (
            init_settings,
            _GroupedEnv(settings_cls),
            _GroupedDotEnv(settings_cls),
            FlatEnv(settings_cls),
            file_secret_settings,
        )

    @model_validator(mode="before")
    @classmethod
    def _only_groups(cls, data: Any) -> Any:
        """A flat name given in code (``Settings(port=1)``) fails instead of being ignored; flat environment
        variables are moved into their groups before this by :class:`FlatEnv`."""
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                raise ValueError(f"not a settings group: {', '.join(unknown)} (fields are grouped, e.g. streaming.max_batch)")
        return data

    def updated(self, changes: dict[str, dict[str, Any]]) -> Settings:
        """A copy with ``changes`` (group -> field -> value) applied, other groups shared."""
        copies = {name: getattr(self, name).model_copy(update=values) for name, values in changes.items()}
        return self.model_copy(update=copies)


def groups() -> dict[str, type[Group]]:
    """Group name -> its model, in the order of :class:`Settings`."""
    out: dict[str, type[Group]] = {}
    for name, field in Settings.model_fields.items():
        assert isinstance(field.annotation, type) and issubclass(field.annotation, Group), name
        out[name] = field.annotation
    return out


def env_name(group: str, field: str) -> str:
    return f"{ENV_PREFIX}{group.upper()}{NESTED}{field.upper()}"


def flag_name(group: str, field: str) -> str:
    return f"--{group}.{field.replace('_', '-')}"


def flat_name(model: type[Group], name: str, field: FieldInfo) -> str:
    """The field's name in the flat layout: its ``flat_name``, else the group's ``flat_prefix`` + its name."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("flat_name"), str):
        return str(extra["flat_name"])
    return model.flat_prefix + name


def flat_names() -> dict[str, tuple[str, str]]:
    """Flat environment variable (``AUDIO_SERVICE_STREAM_MAX_BATCH``) -> (group, field), from the models."""
    table: dict[str, tuple[str, str]] = {}
    for group, model in groups().items():
        for name, field in model.model_fields.items():
            key = ENV_PREFIX + flat_name(model, name, field).upper()
            assert key not in table, f"{key} names both {table[key]} and {(group, name)}"
            table[key] = (group, name)
    return table


def _is_group(field: FieldInfo) -> bool:
    return isinstance(field.annotation, type) and issubclass(field.annotation, Group)


class _GroupedEnv(EnvSettingsSource):
    """Environment variables ``AUDIO_SERVICE_<GROUP>__<FIELD>`` only: a variable named like a whole group is
    not read as that group's JSON, since ``AUDIO_SERVICE_MODELS`` and ``AUDIO_SERVICE_RAY`` are flat names
    of single fields (``models.sources``, ``ray.enabled``)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if _is_group(field):
            return None, field_name, False
        return super().get_field_value(field, field_name)


class _GroupedDotEnv(DotEnvSettingsSource, _GroupedEnv):
    """The ``.env`` file, read like :class:`_GroupedEnv`; its other variables (flat names, a client's
    ``AUDIO_SERVICE_API_KEY``) are not settings fields here."""

    def __call__(self) -> dict[str, Any]:
        return {name: value for name, value in super().__call__().items() if name in self.settings_cls.model_fields}


class FlatEnv(PydanticBaseSettingsSource):
    """Flat names (environment or ``.env``), each moved to its field with a warning naming the grouped variable."""

    def __call__(self) -> dict[str, Any]:
        dotenv = DotEnvSettingsSource(self.settings_cls)
        env = {**{k.upper(): v for k, v in dotenv.env_vars.items()}, **{k.upper(): v for k, v in os.environ.items()}}
        values: dict[str, dict[str, Any]] = {}
        for old, (group, name) in flat_names().items():
            if old not in env:
                continue
            new = env_name(group, name)
            if new in env:
                log.warning("%s is deprecated and ignored: %s is set", old, new)
                continue
            log.warning("%s is deprecated: use %s", old, new)
            field = groups()[group].model_fields[name]
            value: Any = env[old]
            if self.field_is_complex(field):
                try:
                    value = self.decode_complex_value(name, field, value)
                except ValueError as exc:
                    raise SettingsError(f"{old} is not valid JSON: {exc}") from exc
            values.setdefault(group, {})[name] = value
        return values

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads every flat name at once
