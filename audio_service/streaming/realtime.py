"""The OpenAI Realtime API's transcription sessions, as a second protocol over the same stream sessions.

Pure translation, no I/O: client events (JSON text) become a :class:`RealtimeConfig` and the actions of
:class:`~audio_service.streaming.session.StreamSession` (audio, checkpoints); the session's messages
(segment patches, checkpoint answers) become the Realtime server events. The WebSocket endpoint
(``audio_service.api.routes.realtime``) does the I/O and owns the stream session.

How the session's segments map to conversation items:

- ``server_vad``: each segment the stream's VAD cuts is one item. Its first text sends
  ``input_audio_buffer.speech_started``; when it is final, ``speech_stopped``, ``committed`` (and
  ``conversation.item.added``), one ``...transcription.delta`` with its text and ``...transcription.completed``.
- ``turn_detection: null``: the audio between two ``input_audio_buffer.commit`` is one item; the commit
  is a checkpoint that cuts the open segment (:attr:`Checkpoint.turn_end`). Each of the item's segments
  sends a delta when it is final; the checkpoint's answer sends ``committed``, ``conversation.item.added``
  and ``completed`` with the item's whole text.
- ``input_audio_buffer.clear`` is a checkpoint too: what the stream makes of the audio before it (the
  uncommitted audio) is dropped, and ``input_audio_buffer.cleared`` sent when it is answered.

Deltas carry final text only: the concatenation of an item's deltas is exactly its ``completed``
transcript. Partial hypotheses (re-decoded with beam 1, sometimes on a draft model) often revise
punctuation, case or words that a delta would already have sent and cannot take back; their committed
words (``is_final`` on a word of a segment that is not final yet, see
:mod:`~audio_service.streaming.commits`) never change, so each is sent as a delta as soon as it is
committed, and the segment's final sends the rest of its text.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from audio_service.errors import InvalidRequestError, ServiceError
from audio_service.schema import SAMPLE_RATE
from audio_service.streaming.values import Checkpoint
from audio_service.vad.params import VadParams
from audio_service.whisper.decoding import MAX_PROMPT_CHARS, language_code

INPUT_RATES = (24000, SAMPLE_RATE)  # OpenAI's one PCM rate, and the service's own as an extension
CLIENT_EVENTS = (
    "session.update",
    "transcription_session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
)
MIN_COMMIT_S = 0.1  # OpenAI refuses to commit less audio than this


def new_id(prefix: str) -> str:
    """An id in OpenAI's style (``event_...``, ``item_...``)."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class RealtimeEventError(InvalidRequestError):
    """A client event the session refuses; sent as an ``error`` event and the session goes on."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None, event_id: str | None = None) -> None:
        super().__init__(message, param=param, code=code)
        self.event_id = event_id


def error_event(exc: ServiceError, event_id: str | None = None) -> dict[str, Any]:
    """``{"type": "error", "event_id", "error": {"type", "code", "message", "param", "event_id"}}``."""
    return {
        "type": "error",
        "event_id": new_id("event"),
        "error": {
            "type": exc.error_type,
            "code": exc.code,
            "message": exc.message,
            "param": exc.param,
            "event_id": event_id if event_id is not None else getattr(exc, "event_id", None),
        },
    }


# --- session configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class TurnDetection:
    """``server_vad`` turn detection, mapped onto the stream's VAD. The defaults are OpenAI's; a server
    starts its sessions with its streaming VAD's (:meth:`of`)."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500

    @classmethod
    def of(cls, vad: VadParams) -> TurnDetection:
        return cls(vad.threshold, vad.speech_pad_ms, vad.min_silence_duration_ms)

    def vad(self, default: VadParams) -> VadParams:
        return replace(
            default,
            threshold=self.threshold,
            speech_pad_ms=self.prefix_padding_ms,
            min_silence_duration_ms=self.silence_duration_ms,
        )


@dataclass(frozen=True)
class RealtimeConfig:
    """A transcription session's settings, as ``session.update`` leaves them."""

    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    rate: int = 24000
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    beta: bool = False  # set by the older ``transcription_session.update``: answered in that shape
    default_turn: TurnDetection = field(default_factory=TurnDetection)  # what server_vad's unset fields take

    def stream_fields(self) -> tuple[Any, ...]:
        """What the stream session is built with: these cannot change once audio is in it."""
        return (self.model, self.language, self.prompt, self.rate, self.turn_detection)

    def session_json(self) -> dict[str, Any]:
        """The ``session`` of ``session.created`` / ``session.updated`` (GA shape)."""
        turn = self.turn_detection
        return {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": self.rate},
                    "noise_reduction": None,
                    "transcription": {"model": self.model, "language": self.language, "prompt": self.prompt or ""},
                    "turn_detection": None if turn is None else {"type": "server_vad", **turn.__dict__},
                }
            },
            "include": [],
        }

    def beta_session_json(self) -> dict[str, Any]:
        """The ``session`` of ``transcription_session.updated`` (the older beta shape)."""
        turn = self.turn_detection
        return {
            "object": "realtime.transcription_session",
            "input_audio_format": "pcm16",
            "input_audio_transcription": {"model": self.model, "language": self.language, "prompt": self.prompt or ""},
            "turn_detection": None if turn is None else {"type": "server_vad", **turn.__dict__},
            "input_audio_noise_reduction": None,
            "include": [],
        }


def _object(value: Any, param: str, event_id: str | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RealtimeEventError(f"{param} must be an object.", param=param, event_id=event_id)
    return value


def apply_update(config: RealtimeConfig, event: dict[str, Any]) -> RealtimeConfig:
    """The config after a ``session.update`` (GA) or ``transcription_session.update`` (beta) event;
    fields left out keep their value. Raises :class:`RealtimeEventError` naming the bad field."""
    eid = event.get("event_id")
    session = _object(event.get("session", {}), "session", eid)
    if event["type"] == "transcription_session.update":
        fmt = session.get("input_audio_format")
        if fmt is not None and fmt != "pcm16":
            raise RealtimeEventError(
                f"input_audio_format {fmt!r} is not supported: only 'pcm16'.",
                param="session.input_audio_format",
                code="unsupported_format",
                event_id=eid,
            )
        return _apply_input(replace(config, beta=True), session, "session", eid, beta=True)
    kind = session.get("type", "transcription")
    if kind != "transcription":
        raise RealtimeEventError(
            f"session.type {kind!r}: this server only serves transcription sessions (connect with ?intent=transcription).",
            param="session.type",
            event_id=eid,
        )
    audio = _object(session.get("audio", {}), "session.audio", eid)
    given = _object(audio.get("input", {}), "session.audio.input", eid)
    config = replace(config, beta=False)
    if "format" in given:
        config = replace(config, rate=_rate(_object(given["format"], "session.audio.input.format", eid), eid))
    return _apply_input(config, given, "session.audio.input", eid, beta=False)


def _rate(fmt: dict[str, Any], eid: str | None) -> int:
    kind, rate = fmt.get("type", "audio/pcm"), fmt.get("rate", 24000)
    if kind != "audio/pcm":
        raise RealtimeEventError(
            f"audio format {kind!r} is not supported: only 'audio/pcm' (PCM16 little-endian mono).",
            param="session.audio.input.format.type",
            code="unsupported_format",
            event_id=eid,
        )
    if rate not in INPUT_RATES or isinstance(rate, bool):
        raise RealtimeEventError(
            f"audio rate {rate!r} is not supported: 24000 (or {SAMPLE_RATE}, this server's extension).",
            param="session.audio.input.format.rate",
            code="unsupported_format",
            event_id=eid,
        )
    return int(rate)


def _apply_input(config: RealtimeConfig, given: dict[str, Any], at: str, eid: str | None, beta: bool) -> RealtimeConfig:
    tkey = "input_audio_transcription" if beta else "transcription"
    if given.get(tkey) is not None:
        t = _object(given[tkey], f"{at}.{tkey}", eid)
        config = replace(
            config,
            model=_text(t, "model", f"{at}.{tkey}", eid, config.model, 200),
            language=_language(t, f"{at}.{tkey}", eid, config.language),
            prompt=_text(t, "prompt", f"{at}.{tkey}", eid, config.prompt, MAX_PROMPT_CHARS) or None,
        )
    if "turn_detection" in given:
        base = config.turn_detection or config.default_turn
        config = replace(config, turn_detection=_turn(given["turn_detection"], f"{at}.turn_detection", eid, base))
    return config


def _text(t: dict[str, Any], name: str, at: str, eid: str | None, default: str | None, most: int) -> str | None:
    if name not in t:
        return default
    value = t[name]
    if value is not None and (not isinstance(value, str) or len(value) > most):
        raise RealtimeEventError(
            f"{at}.{name} must be a string of at most {most} characters.", param=f"{at}.{name}", event_id=eid
        )
    return value or None


def _language(t: dict[str, Any], at: str, eid: str | None, default: str | None) -> str | None:
    if "language" not in t:
        return default
    try:
        return language_code(t["language"] or None)
    except (ValueError, TypeError) as exc:
        raise RealtimeEventError(f"{at}.language: {exc}", param=f"{at}.language", event_id=eid) from None


_TURN_BOUNDS = {"threshold": (0.01, 0.99), "prefix_padding_ms": (0, 2000), "silence_duration_ms": (100, 29000)}


def _turn(value: Any, at: str, eid: str | None, base: TurnDetection) -> TurnDetection | None:
    """``server_vad`` (fields left out keep ``base``'s values) or None."""
    if value is None:
        return None
    given = _object(value, at, eid)
    kind = given.get("type", "server_vad")
    if kind != "server_vad":
        raise RealtimeEventError(
            f"{at}.type {kind!r} is not supported: 'server_vad', or turn_detection null (commit by hand).",
            param=f"{at}.type",
            code="unsupported_turn_detection",
            event_id=eid,
        )
    values: dict[str, Any] = {}
    for name, (lo, hi) in _TURN_BOUNDS.items():
        raw = given.get(name)
        if raw is None:
            continue
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not lo <= raw <= hi:
            raise RealtimeEventError(f"{at}.{name} must be a number from {lo} to {hi}.", param=f"{at}.{name}", event_id=eid)
        values[name] = float(raw) if name == "threshold" else int(raw)
    return replace(base, **values)


# --- client events ------------------------------------------------------------------------------------


def parse_event(text: str | None) -> dict[str, Any]:
    """A client event: a JSON object whose ``type`` this server knows. Raises :class:`RealtimeEventError`."""
    if text is None:
        raise RealtimeEventError("Client events are JSON text frames, not binary.", param="event", code="invalid_event")
    try:
        event = json.loads(text)
    except ValueError:
        raise RealtimeEventError("The event is not valid JSON.", param="event", code="invalid_json") from None
    if not isinstance(event, dict):
        raise RealtimeEventError("An event must be a JSON object.", param="event", code="invalid_event")
    eid = event.get("event_id")
    eid = eid if isinstance(eid, str) else None
    kind = event.get("type")
    if kind not in CLIENT_EVENTS:
        raise RealtimeEventError(
            f"Unsupported event type {kind!r} in a transcription session; supported: {', '.join(CLIENT_EVENTS)}.",
            param="type",
            code="invalid_event_type",
            event_id=eid,
        )
    return {**event, "event_id": eid}


def audio_bytes(event: dict[str, Any], max_bytes: int) -> bytes:
    """The PCM16 bytes of ``input_audio_buffer.append`` (base64 in ``audio``)."""
    eid, raw = event.get("event_id"), event.get("audio")
    if not isinstance(raw, str):
        raise RealtimeEventError("input_audio_buffer.append needs audio: base64 PCM16.", param="audio", event_id=eid)
    if len(raw) > max_bytes * 4 // 3 + 4:
        raise RealtimeEventError(
            f"audio: more than {max_bytes} bytes in one append.", param="audio", code="audio_too_large", event_id=eid
        )
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise RealtimeEventError("audio is not valid base64.", param="audio", code="invalid_audio", event_id=eid) from None
    if len(data) % 2:
        raise RealtimeEventError(
            f"audio: {len(data)} bytes is not a whole number of 16-bit samples.",
            param="audio",
            code="invalid_audio",
            event_id=eid,
        )
    return data


# --- server events ------------------------------------------------------------------------------------


def session_event(config: RealtimeConfig, session_id: str, created: bool) -> dict[str, Any]:
    """``session.created`` / ``session.updated`` (``transcription_session.updated`` after a beta update)."""
    if config.beta and not created:
        session = {"id": session_id, **config.beta_session_json()}
        return {"type": "transcription_session.updated", "event_id": new_id("event"), "session": session}
    kind = "session.created" if created else "session.updated"
    return {"type": kind, "event_id": new_id("event"), "session": {"id": session_id, **config.session_json()}}


def server_event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": new_id("event"), **fields}


def _committed(item_id: str, previous: str | None) -> list[dict[str, Any]]:
    """``input_audio_buffer.committed`` and the ``conversation.item.added`` of the user message it makes."""
    item = {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_audio", "transcript": None}],
    }
    return [
        server_event("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous),
        server_event("conversation.item.added", item=item, previous_item_id=previous),
    ]


def _usage(seconds: float) -> dict[str, Any]:
    return {"type": "duration", "seconds": round(max(0.0, seconds), 3)}


@dataclass
class _Item:
    id: str
    texts: list[str] = field(default_factory=list)  # its final segments' texts
    sent: dict[int, int] = field(default_factory=dict)  # stream segment id -> characters of its text sent as deltas
    spoke: bool = False  # a delta was sent


def committed_chars(seg: dict[str, Any]) -> int:
    """How many characters of a segment's text its committed words (``is_final`` words) cover: the text
    starts with them."""
    text, pos = (seg.get("text") or "").strip(), 0
    for w in seg.get("words", ()):
        if not w.get("is_final"):
            break
        at = text.find(w["word"], pos)
        if at < 0:
            break
        pos = at + len(w["word"])
    return pos


def _delta(item: _Item, seg: dict[str, Any], upto: int) -> list[dict[str, Any]]:
    """The delta event with the segment's text from what was sent of it up to character ``upto`` (none
    when there is nothing new)."""
    text = (seg.get("text") or "").strip()
    sent = item.sent.get(seg["id"], 0)
    piece = text[sent:upto]
    if not piece.strip():
        return []
    item.sent[seg["id"]] = upto
    delta = (" " if item.spoke and sent == 0 else "") + piece
    item.spoke = True
    return [server_event("conversation.item.input_audio_transcription.delta", item_id=item.id, content_index=0, delta=delta)]


class RealtimeTranslator:
    """One connection's items: turns the stream session's messages into Realtime server events.

    ``manual`` (turn_detection null): items end at the client's commits, else at the stream's segments.
    Commit and clear become checkpoints (:meth:`commit`, :meth:`clear`) that the endpoint hands to the
    stream session; their answers come back through :meth:`translate` like every other message.
    """

    def __init__(self, manual: bool) -> None:
        self.manual = manual
        self._items: dict[int, _Item] = {}  # stream segment id -> item (server_vad)
        self._open: _Item | None = None  # the item the next segments go to (manual)
        self._previous: str | None = None  # the last committed item
        # checkpoints not answered yet, oldest first: token -> ("commit" | "clear", seconds of audio before it)
        self._markers: dict[str, tuple[str, float]] = {}
        self._uncommitted_s = 0.0  # audio appended since the last commit or clear

    def appended(self, seconds: float) -> None:
        self._uncommitted_s += seconds

    def commit(self, event_id: str | None) -> Checkpoint:
        """The checkpoint a commit becomes. Raises when there is not enough audio to commit."""
        if self._uncommitted_s < MIN_COMMIT_S:
            raise RealtimeEventError(
                f"Error committing input audio buffer: buffer too small. Expected at least {MIN_COMMIT_S * 1000:.0f}ms "
                f"of audio, but buffer only has {self._uncommitted_s * 1000:.2f}ms of audio.",
                param=None,
                code="input_audio_buffer_commit_empty",
                event_id=event_id,
            )
        return self._marker("commit")

    def clear(self) -> Checkpoint:
        return self._marker("clear")

    def _marker(self, kind: str) -> Checkpoint:
        token = f"__realtime_{kind}_{uuid.uuid4().hex}"
        self._markers[token] = (kind, self._uncommitted_s)
        self._uncommitted_s = 0.0
        return Checkpoint(token, turn_end=True)

    def translate(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """The Realtime events for one message of the stream session (none for what they do not show)."""
        token = message.get("checkpoint_id")
        if token is not None:
            return self._answered(str(token))
        events: list[dict[str, Any]] = []
        if self._markers and next(iter(self._markers.values()))[0] == "clear":
            # the stream answers checkpoints in order, each once the segments before it are final: until the
            # oldest waiting one, a clear, is answered, segments are of the audio it drops
            return events
        for seg in message.get("segments", ()):
            events += self._segment_manual(seg) if self.manual else self._segment_vad(seg)
        return events

    def _answered(self, token: str) -> list[dict[str, Any]]:
        kind, seconds = self._markers.pop(token, ("", 0.0))
        if kind == "clear":
            self._open = None
            self._items.clear()  # segments of the cleared audio: final by now, never shown again
            return [server_event("input_audio_buffer.cleared")]
        if kind != "commit" or not self.manual:
            return []  # in server_vad mode the segments committed themselves
        item, self._open = self._open or _Item(new_id("item")), None
        previous, self._previous = self._previous, item.id
        transcript = " ".join(t for t in item.texts if t)
        return [
            *_committed(item.id, previous),
            server_event(
                "conversation.item.input_audio_transcription.completed",
                item_id=item.id,
                content_index=0,
                transcript=transcript,
                usage=_usage(seconds),
            ),
        ]

    def _segment_manual(self, seg: dict[str, Any]) -> list[dict[str, Any]]:
        if self._open is None:
            self._open = _Item(new_id("item"))
        item = self._open
        text = (seg.get("text") or "").strip()
        if not seg.get("is_final"):
            return _delta(item, seg, committed_chars(seg))
        if text:
            item.texts.append(text)
        return _delta(item, seg, len(text))

    def _segment_vad(self, seg: dict[str, Any]) -> list[dict[str, Any]]:
        events = []
        item = self._items.get(seg["id"])
        if item is None:
            item = self._items[seg["id"]] = _Item(new_id("item"))
            events.append(
                server_event("input_audio_buffer.speech_started", audio_start_ms=_ms(seg.get("start")), item_id=item.id)
            )
        if not seg.get("is_final"):
            return events + _delta(item, seg, committed_chars(seg))
        del self._items[seg["id"]]
        previous, self._previous = self._previous, item.id
        text = (seg.get("text") or "").strip()
        events += [
            server_event("input_audio_buffer.speech_stopped", audio_end_ms=_ms(seg.get("end")), item_id=item.id),
            *_committed(item.id, previous),
        ]
        events += _delta(item, seg, len(text))
        events.append(
            server_event(
                "conversation.item.input_audio_transcription.completed",
                item_id=item.id,
                content_index=0,
                transcript=text,
                usage=_usage(float(seg.get("end") or 0.0) - float(seg.get("start") or 0.0)),
            )
        )
        return events


def _ms(seconds: Any) -> int:
    return int(round(float(seconds or 0.0) * 1000))
