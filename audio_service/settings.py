"""The service's one settings object.

Built once (from environment variables with the ``AUDIO_SERVICE_`` prefix, a ``.env`` file, or
CLI flags) and passed to :func:`audio_service.app.create_app`. Nothing reads settings from a global.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, CliImplicitFlag, SettingsConfigDict

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


class Settings(BaseSettings):
    """Every knob of the server. Environment: ``AUDIO_SERVICE_<FIELD>``; CLI: ``--<field-name>``."""

    model_config = SettingsConfigDict(env_prefix="AUDIO_SERVICE_", env_file=".env", extra="ignore")

    # --- network ---
    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port to listen on.")
    log_level: str = Field("info", description="Log level (debug, info, warning, error).")
    replica_name: str = Field(
        "", description="Sent as x-audio-service-replica on every response; empty = <hostname>:<pid> (under Ray: the replica id)."
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description=(
            "Also serve /metrics on this port of `host` (0 = only on the main port). Under Ray Serve replica k of a node uses "
            "metrics_port + k, so Prometheus scrapes every replica (through the Serve proxy, /metrics reaches one replica at a "
            "time)."
        ),
    )

    # --- models ---
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Inference device; auto picks CUDA when present.")
    compute_type: str = Field("auto", description="CTranslate2 compute type; auto = int8 on CPU, float16 on CUDA.")
    cpu_threads: int = Field(
        0,
        ge=0,
        description=(
            "CPU threads per model call, CTranslate2 and torch alike (0 = all cores; a Ray Serve replica: its ray_num_cpus)."
        ),
    )
    blas_threads: int = Field(
        1,
        ge=0,
        description=(
            "Threads of numpy's BLAS in the server process (0 = its default: one per core, busy-waiting after every call)."
        ),
    )
    stream_cpu_threads: int = Field(
        1,
        ge=0,
        description=(
            "CPU threads per streaming model call, on a CPU (0 = cpu_threads); streams then share their own instance of each "
            "model."
        ),
    )
    stream_workers: int = Field(
        0,
        ge=0,
        description=(
            "Streaming model calls run at once (0 = cores / stream_cpu_threads on a CPU, a Ray replica counting ray_num_cpus as "
            "its cores; 1 on a GPU)."
        ),
    )
    models: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_MODELS),
        description='Model table as JSON: id -> "packaged:<name>", hub id, or local directory.',
    )
    aliases: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ALIASES), description="Model aliases as JSON: name -> model id."
    )
    default_model: str = Field("whisper-base", description="Model used when a request names none.")
    preload_models: list[str] = Field(
        default_factory=lambda: ["whisper-base"], description="Models loaded at start-up (JSON list)."
    )
    model_cache_dir: Path = Field(
        Path.home() / ".cache" / "audio-service", description="Where packaged models are assembled and hub models cached."
    )
    beam_size: int = Field(5, ge=1, le=32, description="Beam size for batch decoding.")
    batch_decoder: Literal["sequential", "batched"] = Field(
        "sequential",
        description=(
            "How batch requests decode: sequential = faster-whisper's transcribe loop (previous-text context, "
            "temperature fallback; the accuracy of faster-whisper run directly); batched = windows decoded in "
            "batches like its BatchedInferencePipeline (several times faster on a GPU, a little less accurate)."
        ),
    )
    batch_size: int = Field(8, ge=1, description="Windows decoded per model call when batch_decoder=batched.")
    batch_block_s: float = Field(
        600.0,
        gt=0,
        description="Long files are decoded and transcribed in blocks of about this many seconds (bounded memory).",
    )

    # --- auth and limits ---
    api_keys: list[SecretStr] = Field(default_factory=list, description="Accepted API keys (JSON list); empty = open server.")
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
    inference_workers: int = Field(1, ge=1, description="Batch requests run at once (each in a worker thread).")
    max_queued_requests: int = Field(
        16,
        ge=0,
        description=(
            "Batch requests that may wait for a worker (in the whole deployment with a redis:// rate_limit_storage); more get "
            "429."
        ),
    )
    retry_after_s: int = Field(5, ge=1, description="Retry-After seconds sent with 429.")
    keys_file: Path | None = Field(
        None,
        description="JSON keys file: named keys stored as SHA-256 hashes, with optional per-key limits (audio-service keys add).",
    )
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
    rate_limit_storage: str = Field(
        "memory://", description="Where quota counters live: memory:// (per process) or redis://host:port/db (shared)."
    )
    shutdown_grace_s: float = Field(
        60.0, ge=0, description="On SIGTERM: how long in-flight requests and stream flushes may take before the server exits."
    )
    log_format: Literal["text", "json"] = Field("text", description="Log line format: text, or one JSON object per line.")

    # --- streaming ---
    max_streams_per_key: int = Field(10, ge=1, description="Concurrent WebSocket streams per API key (or per server when open).")
    stream_max_frame_bytes: int = Field(64000, ge=2, description="Largest binary frame accepted (bytes; 64000 = 2 s of PCM16).")
    stream_idle_timeout_s: float = Field(300.0, gt=0, description="Close a stream after this long with no frame at all.")
    stream_send_timeout_s: float = Field(
        30.0, gt=0, description="A client that takes no message for this long (s) while messages wait is closed with 1008."
    )
    stream_batching: bool | Literal["auto"] = Field(
        "auto",
        description=(
            "Batch decode work of several streams into one model call; auto = on a GPU only (on a 2-core CPU, one "
            "single-threaded call per core served more streams)."
        ),
    )
    stream_max_batch: int = Field(8, ge=1, description="Most stream windows decoded in one batched model call.")
    stream_partial_batch_audio_s: float = Field(
        40.0, gt=0, description="A batch of partial re-decodes stops growing at this much audio, so due final passes wait little."
    )
    stream_endpoint_silence_ms: int = Field(
        500,
        ge=0,
        description="Silence (ms) that ends a speech segment and makes it final; vad_kwargs.min_silence_duration_ms overrides.",
    )
    stream_short_segment_s: float = Field(
        2.0,
        ge=0,
        description="Segments with less speech than this wait for stream_short_endpoint_s of silence (context helps Whisper).",
    )
    stream_short_endpoint_s: float = Field(
        1.5, ge=0, description="Endpoint silence (s) for short segments; see stream_short_segment_s."
    )
    stream_vad_threshold: float = Field(0.5, gt=0, lt=1, description="Silero speech probability above which a window is speech.")
    stream_speech_pad_ms: int = Field(200, ge=0, description="Audio kept before and after detected speech in a segment (ms).")
    stream_max_segment_s: float = Field(
        15.0, ge=1.0, le=28.0, description="Longest segment; longer speech is cut at its quietest recent point."
    )
    stream_partial_interval_s: float = Field(
        0.5, gt=0, description="New audio (s) before the open segment is re-decoded; updates get coarser when the model is busy."
    )
    stream_text_timeout_s: float = Field(
        5.0, ge=1.0, le=29.0, description="Default text_timeout_seconds: speech with no new text for this long is made final."
    )
    stream_max_backlog_s: float = Field(
        60.0, gt=0, description="Audio (s) a stream may hold untranscribed before it is closed with 1013 (bounds memory)."
    )
    stream_final_beam_size: int = Field(5, ge=1, le=32, description="Beam size of the final pass over each segment.")
    stream_partial_model: str = Field(
        "whisper-tiny.en",
        description=(
            "Cheaper model for partial hypotheses (an English-only one: English streams only); finals use the stream's model. "
            "Empty = the stream's model."
        ),
    )

    # --- scale-out on Ray Serve (the ray extra; audio_service/scale/ray_serve.py) ---
    ray: CliImplicitFlag[bool] = Field(
        False,
        description="serve (--ray / --no-ray): run as a Ray Serve deployment of --replicas replicas instead of one process.",
    )
    ray_address: str | None = Field(
        None, description="Ray cluster to join (host:port or ray://...); unset = RAY_ADDRESS, else a local cluster is started."
    )
    replicas: int = Field(
        1, ge=1, description="Ray: replicas of the service, each with its own models (ray_autoscaling overrides)."
    )
    ray_num_cpus: float = Field(1.0, gt=0, description="Ray: logical CPUs reserved per replica.")
    ray_num_gpus: float | None = Field(
        None,
        ge=0,
        description="Ray: GPUs per replica (0.5 = two share one); unset = 1 when device is not cpu and the cluster has GPUs.",
    )
    ray_autoscaling: dict[str, float] | None = Field(
        None,
        description=(
            'Ray: Serve autoscaling config as JSON, e.g. {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 8}.'
        ),
    )
    ray_max_ongoing_requests: int = Field(
        100,
        ge=1,
        description="Ray: requests and streams routed to one replica at once (the service's own limits apply below it).",
    )
    stream_lease_s: float = Field(
        30.0,
        ge=1.0,
        description=(
            "Shared limits (redis:// rate_limit_storage: streams per key, the batch waiting room): a stream or waiting request "
            "counts until this long after its replica's last heartbeat."
        ),
    )
    ray_fanout_block_s: float = Field(
        120.0,
        ge=0,
        description=(
            "Ray: a batch file longer than this is cut (at pauses) into blocks of about this length, transcribed on several "
            "replicas at once; 0 = off."
        ),
    )

    # --- alignment and diarization ---
    aligners: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ALIGNERS),
        description='Aligner aliases as JSON: name a client sends -> aligner ("whisper" or "mms_fa").',
    )
    default_aligner: str = Field("tdnn_ffn", description="Aligner name used when a request names none.")
    mms_fa_dir: Path | None = Field(
        None, description="Directory holding torchaudio's MMS_FA checkpoint (model.pt); enables the real mms_fa aligner."
    )
    diarizers: dict[str, str] = Field(
        default_factory=lambda: {
            "pyannote": "offline",
            "pyannote-offline": "offline",
            "community-1": "community-1",
            "pyannote/speaker-diarization-community-1": "community-1",
        },
        description='Diarizer aliases as JSON: name a client sends -> "offline" or "community-1".',
    )
    default_diarizer: str = Field("pyannote", description="diarization_model used when a request names none.")
    hub_token: SecretStr | None = Field(None, description="Model hub token; enables pyannote speaker-diarization-community-1.")
    diarization_pipeline_dir: Path | None = Field(
        None, description="Local copy of pyannote speaker-diarization-community-1 (used instead of the hub)."
    )
    stream_speaker_context_s: float = Field(
        40.0, gt=0, description="Streaming diarization: seconds of past final segments re-diarized with each new one."
    )

    def model_post_init(self, __context: object) -> None:
        self.model_cache_dir = Path(self.model_cache_dir).expanduser()
