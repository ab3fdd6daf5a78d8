"""The batch pipeline's stages (no web framework imports here): vad -> asr -> align -> diarize.

``batch`` runs a job through ``vad``, ``chunking`` (speech packed into windows), ``asr``, ``segmenter``,
``align`` (``align_mms`` for torchaudio's MMS aligner), ``diarize``/``speakers``; ``blocks`` splits long
files; ``queue`` admits work; ``speaker_tracker`` labels streaming speakers. Whisper's own rules come
from ``audio_service.models`` (shared with streaming).
"""
