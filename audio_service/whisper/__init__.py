"""The Whisper backend: every call into faster-whisper and CTranslate2 is made in this package.

- :mod:`.types`: the values at its edge (loaded model, stream decode request and result, window policy,
  the ``DecodeBatch`` signature); imports neither library, so streaming's pure modules and the tests'
  fake backend use them freely;
- :mod:`.rules`: :class:`~.rules.DecodeOptions`, the one set of decoding options both paths use, and
  Whisper's quality rules (average log-probability, no-speech, compression ratio, loop cuts);
- :mod:`.decoding`: languages and language detection, tokenizers, prompts, suppressed tokens, word timings;
- :mod:`.batch`: faster-whisper's sequential and batched decoders over a file (the batch path);
- :mod:`.stream`: batched CTranslate2 decoding of stream windows (the streaming path);
- :mod:`.load`: loading a model, the device it runs on;
- :mod:`.silero`: the Silero VAD model faster-whisper ships (used by :mod:`audio_service.vad`).

No other package of the service imports faster-whisper or CTranslate2 (an import-linter contract).
"""
