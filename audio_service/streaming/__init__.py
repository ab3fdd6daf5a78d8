"""Real-time streaming transcription: protocol, per-stream sessions and the shared decode engine.

- ``protocol``: query parameters, client and server messages, close codes;
- ``engine``: the one scheduler running every stream's decode work on the shared model; ``decoder``:
  batched Whisper decoding of stream windows; ``vad``: Silero run frame by frame;
- one stream's state, by concern: ``session`` joins the parts behind one lock and hands decode jobs to
  the engine; ``endpointing`` turns VAD decisions into segments; ``cuts`` gives each word of a
  mid-speech cut to its side; ``stabilize`` decides when to re-decode and what of a partial to show
  (local agreement); ``transcript`` keeps ids, finality and the prompt context and makes the views
  that ``patches`` sends. ``segment`` holds the state they share. All but ``session`` (and the
  engine, decoder and VAD) are pure logic, unit-tested without a model.

Nothing here imports FastAPI; ``audio_service.api.routes.streaming`` does the WebSocket I/O.
"""
