"""Real-time streaming transcription: protocol, per-stream sessions and the shared decode engine.

- ``values``: the package's immutable values (session knobs, stream options, markers, segment views);
- ``protocol``: query parameters, client and server messages, close codes;
- ``engine``: the one scheduler running every stream's decode work on the shared model; ``decoder``:
  batched Whisper decoding of stream windows; ``job``: one decode, and the small protocol through
  which the engine answers the session it came from;
- one stream's state, by concern, each part owning its state: ``session`` joins the parts behind one
  lock and hands decode jobs to the engine; ``endpointing`` turns VAD decisions into segments (and
  composes a segment of the parts' states); ``cuts`` gives each word of a mid-speech cut to its side;
  ``stabilize`` decides when to re-decode and what of a partial to show (local agreement);
  ``transcript`` keeps ids, finality and the prompt context and makes the views that ``patches``
  sends; ``markers`` answers checkpoints and traces. All but ``session`` (and the engine and
  decoder) are pure logic, unit-tested without a model.

Nothing here imports FastAPI; ``audio_service.api.routes.streaming`` does the WebSocket I/O.
"""
