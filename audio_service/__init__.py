"""audio-service: a self-hostable speech-to-text server (OpenAI-compatible batch API and WebSocket streaming)."""

__version__ = "0.1.0"
