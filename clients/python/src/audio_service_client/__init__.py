"""Python client for audio-service: batch transcription/translation/alignment and WebSocket streaming.

>>> from audio_service_client import Client
>>> with Client("http://127.0.0.1:8000") as client:
...     print(client.transcribe("speech.flac").text)
...     for update in client.stream("speech.flac"):
...         print(update.transcript.text)
"""

from audio_service_client._request import AlignParams, TranscribeParams, TranslateParams
from audio_service_client.audio import decode_file, to_pcm16
from audio_service_client.client import AsyncClient, Client
from audio_service_client.errors import (
    APIConnectionError,
    APIStatusError,
    AudioServiceError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    StreamError,
)
from audio_service_client.results import (
    Checkpoint,
    Segment,
    StreamSegment,
    StreamTranscript,
    StreamUpdate,
    StreamWord,
    TraceProbe,
    Transcription,
    Word,
)
from audio_service_client.streaming import AsyncTranscriptionStream, TranscriptionStream

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "AlignParams",
    "AsyncClient",
    "AsyncTranscriptionStream",
    "AudioServiceError",
    "AuthenticationError",
    "BadRequestError",
    "Checkpoint",
    "Client",
    "InternalServerError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitError",
    "Segment",
    "StreamError",
    "StreamSegment",
    "StreamTranscript",
    "StreamUpdate",
    "StreamWord",
    "TraceProbe",
    "TranscribeParams",
    "Transcription",
    "TranscriptionStream",
    "TranslateParams",
    "Word",
    "__version__",
    "decode_file",
    "to_pcm16",
]
