"""Models and the Whisper rules both decoding paths (batch ``pipeline/``, ``streaming/``) share.

``registry``: model ids, aliases, one shared instance per model; ``packaged``/``checksum``: packaged model
files; ``segmentation``/``speaker_embedding``: diarization models; ``whisper_rules``: no-speech and loop
rules; ``decoding``: languages, prompt limit, tokenizer, word timing with punctuation merging;
``silero``: the one VAD parameter type; ``priority``: lower thread priority for background work.
"""
