"""Models and the Whisper rules both decoding paths (batch ``pipeline/``, ``streaming/``) share.

``registry``: model ids, aliases, one shared instance per model; ``packaged``/``checksum``: packaged model
files; ``segmentation``: the pyannote segmentation model (diarization and the pyannote VAD);
``whisper_rules``: no-speech and loop rules; ``decoding``: languages, prompt limit, tokenizer, word timing
with punctuation merging; ``priority``: lower thread priority for background work.
"""
