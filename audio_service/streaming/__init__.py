"""Real-time streaming transcription: protocol, per-stream sessions and the shared decode engine.

Nothing here imports FastAPI; ``audio_service.api.streaming`` does the WebSocket I/O.
"""
