"""Command line: ``audio-service serve``, ``audio-service prepare-models`` and ``audio-service keys add NAME``.

Every :class:`Settings` field is also a flag, ``--<group>.<field-name>`` (``--server.max-upload-bytes 1000``),
built by pydantic-settings' CLI support from the field's type and description; flags win over environment
variables (``AUDIO_SERVICE_<GROUP>__<FIELD>``), which win over defaults. List and dict fields take JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from pydantic import BaseModel
from pydantic_settings import CliSettingsSource

from audio_service.logs import configure_logging
from audio_service.settings import Settings, env_name, flag_name


def _settings_flags(parser: argparse.ArgumentParser | None = None) -> CliSettingsSource[Settings]:
    """pydantic-settings' own CLI source: one flag per Settings field, named, typed and documented by it
    (on ``parser``, or on a parser of its own when only used to read already parsed arguments)."""
    source: CliSettingsSource[Settings] = CliSettingsSource(
        Settings, root_parser=parser, cli_kebab_case=True, cli_show_env_vars=True, cli_hide_none_type=True, cli_avoid_json=True
    )
    if parser is not None:
        _show_default_values(parser)
    return source


def _show_default_values(parser: argparse.ArgumentParser) -> None:
    """Help shows "(default factory: <lambda>)" for list and table fields: print the value instead."""
    groups = {name: field.annotation for name, field in Settings.model_fields.items()}
    for action in parser._actions:  # argparse has no public accessor for a parser's arguments
        group, _, name = action.dest.partition(".")
        model = groups.get(group)
        field = model.model_fields.get(name) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is not None and field.default_factory is not None and action.help:
            value = json.dumps(field.get_default(call_default_factory=True)).replace("%", "%%")
            action.help = re.sub(r"\(default factory: [^)]*\)", f"(default: {value})", action.help)


def build_settings(args: argparse.Namespace) -> Settings:
    """Settings from parsed flags, over ``AUDIO_SERVICE_*`` environment variables, over defaults."""
    return Settings(_cli_settings_source=_settings_flags()(parsed_args=args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="audio-service", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="Start the HTTP/WebSocket server.")
    prepare = sub.add_parser(
        "prepare-models",
        help="Assemble and load the preloaded models once, put the pyannote segmentation checkpoint into the cache, then exit.",
    )
    for p in (serve, prepare):
        _settings_flags(p)
    keys = sub.add_parser("keys", help="Manage API keys in the keys file.")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    add = keys_sub.add_parser("add", help="Create a key: print it once, store only its SHA-256 hash.")
    add.add_argument("name", help="The key's name (shown in logs and metrics instead of the key).")
    add.add_argument("--keys-file", type=Path, help=f"Keys file (default: {env_name('auth', 'keys_file')}).")
    add.add_argument("--requests-per-minute", type=int)
    add.add_argument("--audio-seconds-per-minute", type=float)
    add.add_argument("--max-streams", type=int)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")  # `python -m audio_service --server.port 9000` means serve
    args = _parser().parse_args(argv)
    if args.command == "keys":
        return _keys_add(args)
    settings = build_settings(args)
    configure_logging(settings.server.log_level, settings.server.log_format)
    if args.command == "prepare-models":
        return _prepare_models(settings)
    if settings.ray.enabled:
        from audio_service.extras import install_hint, installed

        if not installed("ray"):
            print(f"error: {flag_name('ray', 'enabled')} needs the ray extra: {install_hint('ray')}", file=sys.stderr)
            return 2
        from audio_service.scale.ray_serve import serve_forever  # Ray (the ray extra) loads only here

        return serve_forever(settings)
    return _serve(settings)


def _prepare_models(settings: Settings) -> int:
    from audio_service.extras import install_hint, installed
    from audio_service.models.packaged import prepare_segmentation_checkpoint
    from audio_service.models.registry import ModelRegistry

    registry = ModelRegistry(settings)
    for name in settings.models.preload:
        model = registry.get(name)
        print(f"{name}: ready ({model.device}, {model.compute_type})")
    if installed("diarization"):
        print(f"pyannote segmentation: ready ({prepare_segmentation_checkpoint(settings.models.cache_dir)})")
    else:  # only diarization and the pyannote VAD use it, and they cannot run without their extra
        print(f"pyannote segmentation: skipped (the diarization extra is not installed: {install_hint('diarization')})")
    return 0


def _serve(settings: Settings) -> int:
    import uvicorn

    from audio_service.app import create_app
    from audio_service.server.draining import DrainingServer
    from audio_service.server.protocols import header_timeout_protocol, stuck_reader_ws_protocol

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_level=settings.server.log_level.lower(),
        log_config=None,  # uvicorn's loggers go through ours (text or JSON)
        access_log=False,  # one request line per request comes from our middleware
        ws_max_size=settings.streaming.max_frame_bytes + 1024,
        http=header_timeout_protocol(settings.server.request_header_timeout_s),
        ws=stuck_reader_ws_protocol(),
        timeout_graceful_shutdown=5,  # after our drain only idle connections are left
    )
    DrainingServer(config, app.state.services.ops.drain, settings.server.shutdown_grace_s).run()
    return 0


def _keys_add(args: argparse.Namespace) -> int:
    from audio_service.keys import add_key

    path = args.keys_file or Settings().auth.keys_file
    if path is None:
        print(f"error: give --keys-file or set {env_name('auth', 'keys_file')}", file=sys.stderr)
        return 2
    try:
        key = add_key(
            Path(path).expanduser(),
            args.name,
            requests_per_minute=args.requests_per_minute,
            audio_seconds_per_minute=args.audio_seconds_per_minute,
            max_streams=args.max_streams,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(key)
    print(f"# key {args.name!r} added to {path} (only its hash is stored: this is the only time it is shown)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
