"""Response formatting: one transcript, five output formats (json, text, srt, vtt, verbose_json)."""

from audio_service.formatting.render import RESPONSE_FORMATS, Rendered, render

__all__ = ["RESPONSE_FORMATS", "Rendered", "render"]
