"""Models: the registry of Whisper models, packaged model files, the shared segmentation model.

``registry``: model ids, aliases, one shared instance per model (loaded through :mod:`audio_service.whisper`);
``packaged``/``checksum``: packaged model files; ``segmentation``: the pyannote segmentation model
(diarization and the pyannote VAD); ``priority``: lower thread priority for background work. Whisper's
decoding options and rules, shared by the batch and the streaming path, are in :mod:`audio_service.whisper`.
"""
