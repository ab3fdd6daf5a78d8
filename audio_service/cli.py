"""Command line: ``audio-service serve`` and ``audio-service prepare-models``.

Every :class:`Settings` field is also a flag (``--max-upload-bytes 1000``); flags win over
environment variables (``AUDIO_SERVICE_*``), which win over defaults. List and dict fields take JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, get_origin

from audio_service.settings import Settings


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    for name, field in Settings.model_fields.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            default=argparse.SUPPRESS,
            help=f"{field.description} (env AUDIO_SERVICE_{name.upper()})",
        )


def _coerce(name: str, raw: str) -> Any:
    annotation = Settings.model_fields[name].annotation
    if get_origin(annotation) in (list, dict):
        return json.loads(raw)
    return raw  # pydantic converts strings to ints, floats, bools, paths


def build_settings(args: argparse.Namespace) -> Settings:
    overrides = {k: _coerce(k, v) for k, v in vars(args).items() if k in Settings.model_fields}
    return Settings(**overrides)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audio-service", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="Start the HTTP/WebSocket server.")
    prepare = sub.add_parser("prepare-models", help="Assemble and load the preloaded models once, then exit.")
    for p in (serve, prepare):
        _add_settings_flags(p)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")  # `python -m audio_service --port 9000` means serve
    args = parser.parse_args(argv)
    command = args.command
    settings = build_settings(args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if command == "prepare-models":
        from audio_service.models.registry import ModelRegistry

        registry = ModelRegistry(settings)
        for name in settings.preload_models:
            model = registry.get(name)
            print(f"{name}: ready ({model.device}, {model.compute_type})")
        return 0

    import uvicorn

    from audio_service.api.timeouts import header_timeout_protocol, stuck_reader_ws_protocol
    from audio_service.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        ws_max_size=settings.stream_max_frame_bytes + 1024,
        http=header_timeout_protocol(settings.request_header_timeout_s),
        ws=stuck_reader_ws_protocol(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
