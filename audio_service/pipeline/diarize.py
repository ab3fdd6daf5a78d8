"""Speaker diarization: who spoke when.

Two backends, chosen per request through operator aliases (``Settings.diarizers``):

* ``offline`` (default, no model hub): pyannote.audio's own ``SpeakerDiarization`` machinery driven by
  packaged weights - the pyannote segmentation model shipped in the ``whisperx`` wheel finds up to three
  local speakers per 5 s window, resemblyzer's GE2E encoder embeds each local speaker, and pyannote's
  agglomerative clustering links them across windows with a *constrained* assignment (two local
  speakers of one window are never the same person), within the request's speaker bounds.
* ``community-1``: ``pyannote/speaker-diarization-community-1`` where a deployment provides a hub token
  or a local copy of the pipeline.

The online :class:`SpeakerTracker` gives streaming sessions consistent labels, one final segment at a
time. torch, pyannote and resemblyzer are imported only when a diarizer is first used.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from audio_service.errors import InvalidRequestError, ModelUnavailableError
from audio_service.schema import Audio, SpeakerTurn

if TYPE_CHECKING:  # pragma: no cover
    from audio_service.settings import Settings

log = logging.getLogger(__name__)

# Tuned on two_speakers.wav and checked on a file of joined espeak-ng voices (see bench/diarization.py).
SEGMENTATION_THRESHOLD = 0.5  # onset of a local speaker in the segmentation model's output
SEGMENTATION_STEP = 0.2  # window hop as a fraction of the 5 s window
CLUSTER_METHOD = "centroid"
CLUSTER_THRESHOLD = 0.5  # euclidean distance between unit-norm GE2E centroids
MIN_CLUSTER_SIZE = 5
MIN_EMBED_SECONDS = 0.5  # less clean speech than this gives no reliable embedding
MIN_RUN_SECONDS = 0.5  # a streaming segment is split at a speaker change only between runs this long
UNBOUNDED_SPEAKERS = 20


def whisperx_segmentation_path() -> Path:
    """The pyannote segmentation checkpoint of the ``whisperx`` wheel, extracted into the model cache and
    sha256-checked by ``audio-service prepare-models`` (whisperx itself is not installed)."""
    from audio_service.models.packaged import segmentation_checkpoint

    return segmentation_checkpoint()


_shared_lock = threading.Lock()
_shared: dict[str, Any] = {}


def _load_once(key: str, loader: Callable[[], Any]) -> Any:
    """Load a model once per process and share it (the loaders are slow; the models are read-only)."""
    with _shared_lock:
        if key not in _shared:
            _shared[key] = loader()
        return _shared[key]


def segmentation_model():
    """The shared pyannote segmentation model (PyanNet, 3 local speakers per 5 s window), in eval mode."""

    def load():
        import warnings

        from pyannote.audio import Model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = Model.from_pretrained(str(whisperx_segmentation_path()))
        model.eval()
        return model

    return _load_once("segmentation", load)


def voice_encoder():
    """The shared resemblyzer GE2E voice encoder (256-d speaker embeddings; weights ship in the wheel)."""

    def load():
        from resemblyzer import VoiceEncoder

        return VoiceEncoder("cpu", verbose=False)

    return _load_once("voice_encoder", load)


def embed_speech(samples: np.ndarray) -> np.ndarray:
    """One L2-normalised GE2E embedding of ``samples`` (16 kHz speech), averaged over 1.6 s partials."""
    return embed_many([samples])[0]


def embed_many(clips: list[np.ndarray]) -> np.ndarray:
    """GE2E embeddings of several clips with one encoder call (the LSTM is costly to start per call)."""
    import torch
    from resemblyzer import audio as raudio

    encoder = voice_encoder()
    mels, owners = [], []
    for k, clip in enumerate(clips):
        wav = raudio.normalize_volume(clip.astype(np.float32), -30, increase_only=True).astype(np.float32)
        wav_slices, mel_slices = encoder.compute_partial_slices(len(wav), rate=1.3, min_coverage=0.75)
        if wav_slices[-1].stop >= len(wav):
            wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)))
        mel = raudio.wav_to_mel_spectrogram(wav)
        mels += [mel[s] for s in mel_slices]
        owners += [k] * len(mel_slices)
    with torch.inference_mode():
        partials = encoder(torch.from_numpy(np.stack(mels))).cpu().numpy()
    owners_arr = np.array(owners)
    out = np.stack([partials[owners_arr == k].mean(axis=0) for k in range(len(clips))])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


class GE2EEmbedding:
    """Adapter giving resemblyzer's encoder the interface pyannote's pipeline expects of an embedding.

    pyannote calls it with a batch of 5 s windows and a frame mask per (window, local speaker); the
    masked samples are the local speaker's speech, embedded as one utterance.
    """

    sample_rate = 16000
    dimension = 256
    metric = "cosine"
    min_num_samples = int(MIN_EMBED_SECONDS * 16000)

    def __call__(self, waveforms, masks=None) -> np.ndarray:
        out = np.full((waveforms.shape[0], self.dimension), np.nan, dtype=np.float32)
        clips, rows = [], []
        for i in range(waveforms.shape[0]):
            wav = waveforms[i, 0].numpy()
            if masks is not None:
                mask = masks[i].numpy()
                frame = np.minimum((np.arange(len(wav)) * len(mask)) // len(wav), len(mask) - 1)
                wav = wav[mask[frame] > 0.5]
            if len(wav) >= self.min_num_samples:
                clips.append(wav)
                rows.append(i)
        if clips:
            out[rows] = embed_many(clips)
        return out  # NaN rows are left out of clustering by pyannote


def _offline_pipeline_class():
    from pyannote.audio import Inference
    from pyannote.audio.core.io import Audio as PyannoteAudio
    from pyannote.audio.core.pipeline import Pipeline
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering
    from pyannote.audio.pipelines.speaker_diarization import SpeakerDiarization
    from pyannote.pipeline.parameter import ParamDict, Uniform

    class OfflineSpeakerDiarization(SpeakerDiarization):
        """pyannote's ``SpeakerDiarization`` with packaged models instead of hub checkpoints.

        Only the constructor differs: it skips the hub look-ups and PLDA (VBx needs it) and plugs in
        the GE2E adapter and agglomerative clustering with constrained assignment.
        """

        def __init__(self, model) -> None:
            Pipeline.__init__(self)
            self.legacy = True
            self.segmentation_model = "whisperx-pyannet"
            self.segmentation_step = SEGMENTATION_STEP
            self.embedding = "resemblyzer-ge2e"
            self.embedding_batch_size = 64
            self.embedding_exclude_overlap = True
            self.klustering = "AgglomerativeClustering"
            self.der_variant = {"collar": 0.0, "skip_overlap": False}
            duration = model.specifications.duration
            self._segmentation = Inference(
                model, duration=duration, step=SEGMENTATION_STEP * duration, skip_aggregation=True, batch_size=8
            )
            self.segmentation = ParamDict(threshold=Uniform(0.1, 0.9), min_duration_off=Uniform(0.0, 1.0))
            self._embedding = GE2EEmbedding()
            self._audio = PyannoteAudio(sample_rate=16000, mono="downmix")
            self.clustering = AgglomerativeClustering(metric="cosine", constrained_assignment=True)
            self._expects_num_speakers = False

    return OfflineSpeakerDiarization


@dataclass(frozen=True)
class SpeakerBounds:
    min_speakers: int | None = None
    max_speakers: int | None = None


class Diarizer(Protocol):
    name: str

    def __call__(self, audio: Audio, bounds: SpeakerBounds) -> list[SpeakerTurn]: ...


def _annotation_to_turns(annotation) -> list[SpeakerTurn]:
    """pyannote ``Annotation`` -> sorted turns labelled SPEAKER_00, SPEAKER_01, ... in order of appearance."""
    labels: dict[str, str] = {}
    turns = []
    for segment, _, label in sorted(annotation.itertracks(yield_label=True), key=lambda t: t[0].start):
        name = labels.setdefault(label, f"SPEAKER_{len(labels):02d}")
        turns.append(SpeakerTurn(float(segment.start), float(segment.end), name))
    return turns


def _pyannote_input(audio: Audio) -> dict[str, Any]:
    import torch

    # In-memory audio: pyannote then never decodes files itself (no torchcodec).
    return {"waveform": torch.from_numpy(audio.samples)[None], "sample_rate": audio.sample_rate, "uri": "request"}


class OfflineDiarizer:
    """The default diarizer: packaged segmentation + GE2E embeddings + constrained clustering."""

    name = "pyannote-offline"

    def __init__(self) -> None:
        self._pipeline = None
        self._lock = threading.Lock()

    def _get_pipeline(self):
        if self._pipeline is None:
            pipeline = _offline_pipeline_class()(segmentation_model())
            pipeline.instantiate(
                {
                    "segmentation": {"threshold": SEGMENTATION_THRESHOLD, "min_duration_off": 0.0},
                    "clustering": {
                        "method": CLUSTER_METHOD,
                        "threshold": CLUSTER_THRESHOLD,
                        "min_cluster_size": MIN_CLUSTER_SIZE,
                    },
                }
            )
            self._pipeline = pipeline
        return self._pipeline

    def __call__(self, audio: Audio, bounds: SpeakerBounds) -> list[SpeakerTurn]:
        import torch

        # The pipeline object holds instantiated parameters; one call at a time keeps it consistent
        # (each call already uses both cores through torch).
        with self._lock, torch.inference_mode():
            pipeline = self._get_pipeline()
            annotation = pipeline(
                _pyannote_input(audio),
                min_speakers=bounds.min_speakers,
                max_speakers=bounds.max_speakers or UNBOUNDED_SPEAKERS,
            )
        return _annotation_to_turns(annotation)


class CommunityDiarizer:
    """``pyannote/speaker-diarization-community-1`` from a local directory or the hub (with a token)."""

    name = "pyannote-community-1"

    def __init__(self, source: str, token: str | None) -> None:
        self._source = source
        self._token = token
        self._pipeline = None
        self._lock = threading.Lock()

    def _get_pipeline(self):
        if self._pipeline is None:
            from pyannote.audio import Pipeline

            try:
                self._pipeline = Pipeline.from_pretrained(self._source, token=self._token)
            except Exception as exc:
                raise ModelUnavailableError(f"Diarization pipeline {self._source!r} could not be loaded: {exc}") from exc
            if self._pipeline is None:
                raise ModelUnavailableError(f"Diarization pipeline {self._source!r} could not be loaded.")
        return self._pipeline

    def __call__(self, audio: Audio, bounds: SpeakerBounds) -> list[SpeakerTurn]:
        import torch

        with self._lock, torch.inference_mode():
            output = self._get_pipeline()(
                _pyannote_input(audio), min_speakers=bounds.min_speakers, max_speakers=bounds.max_speakers
            )
        annotation = getattr(output, "speaker_diarization", output)
        return _annotation_to_turns(annotation)


COMMUNITY_1 = "pyannote/speaker-diarization-community-1"


class DiarizerRegistry:
    """Client-sent ``diarization_model`` names -> the one shared diarizer backing them."""

    def __init__(self, settings: Settings) -> None:
        self._aliases = dict(settings.diarizers)
        self._default = settings.default_diarizer
        self._backends: dict[str, Callable[[], Diarizer]] = {"offline": OfflineDiarizer}
        source = str(settings.diarization_pipeline_dir) if settings.diarization_pipeline_dir else None
        if source or settings.hub_token:
            self._backends["community-1"] = lambda: CommunityDiarizer(source or COMMUNITY_1, settings.hub_token)
        self._instances: dict[str, Diarizer] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """The names that work on this server."""
        return sorted(n for n, b in self._aliases.items() if b in self._backends)

    def resolve(self, name: str | None) -> str:
        """The backend for ``name`` (None = default); 400 listing working names if none."""
        backend = self._aliases.get(name or self._default)
        if backend not in self._backends:
            raise InvalidRequestError(
                f"Unknown or unavailable diarization_model {name!r}. Available: {', '.join(self.names())}.",
                param="diarization_model",
            )
        return backend

    def get(self, name: str | None) -> Diarizer:
        """The shared diarizer serving ``name`` (created on first use; models load on first call)."""
        return self._instance(self.resolve(name))

    def offline(self) -> OfflineDiarizer:
        """The shared offline diarizer (streaming's tracker uses it whatever the aliases say)."""
        diarizer = self._instance("offline")
        assert isinstance(diarizer, OfflineDiarizer)
        return diarizer

    def _instance(self, backend: str) -> Diarizer:
        with self._lock:
            if backend not in self._instances:
                self._instances[backend] = self._backends[backend]()
            return self._instances[backend]


# --- streaming: online speaker tracking -------------------------------------------------------------


class SpeakerTracker:
    """Session-consistent speaker labels for a stream's final segments, one segment at a time.

    GE2E similarity of isolated segments separates speakers poorly, so each new segment is
    diarized *in context*: the tracker keeps the audio of the session's recent final segments
    (up to ``context_s`` seconds), runs the offline diarizer on those segments followed by the new
    one (joined back to back, as the stream had them), maps the diarizer's labels one-to-one onto the
    labels already given (the assignment that agrees most with past audio) and returns the label of
    each word of the new segment (:meth:`assign_words`; :meth:`assign` gives one label for a span).
    A speaker the mapping leaves unmatched takes the closest-sounding known label the diarizer
    matched to no one else, or a new label when every known label is taken. The history keeps each
    speaker's own stretch of a segment (split at the word where the label changes), so a segment
    holding both sides of a quick exchange does not blur later mappings. Past labels never change.
    One tracker per stream.
    """

    def __init__(
        self,
        diarizer: OfflineDiarizer,
        context_s: float = 40.0,
        max_speakers: int | None = None,
        gap_s: float = 0.0,
    ) -> None:
        self._diarizer = diarizer
        self._context_s = context_s
        self._max_speakers = max_speakers
        self._gap = np.zeros(int(gap_s * 16000), dtype=np.float32)
        self._history: list[tuple[np.ndarray, str]] = []  # (samples, label) of past final segments
        self._count = 0
        self._lock = threading.Lock()

    def assign(self, audio: Audio, start: float, end: float) -> str:
        """The label of the speaker talking in ``audio`` between ``start`` and ``end`` (seconds)."""
        labels = self.assign_words(audio, [(start, end)])
        return labels[0]

    def assign_words(self, audio: Audio, words: list[tuple[float, float]]) -> list[str]:
        """One label per word (``(start, end)`` seconds into ``audio``, in time order) of one final segment.

        A VAD endpoint needs a pause, so one final segment often holds both sides of a quick
        exchange: labelling each word lets the caller split it where the speaker changes. Runs of
        words shorter than ``MIN_RUN_SECONDS`` join their neighbour (too short to tell apart).
        """
        t0, t1 = words[0][0], words[-1][1]
        piece = audio.slice(t0, t1).samples.astype(np.float32)
        local = [(max(0.0, a - t0), max(0.0, b - t0)) for a, b in words]
        with self._lock:
            labels = self._labels(piece, local) if len(piece) >= MIN_EMBED_SECONDS * audio.sample_rate else None
            if labels is None:  # too short to tell: most likely the previous speaker goes on
                labels = [self._history[-1][1] if self._history else self._new_label()] * len(words)
            labels = _merge_short_runs(labels, local)
            # Remember each speaker's own stretch of the piece, so later mappings see clean labels.
            for (a, b), label in _runs(labels, local):
                self._history.append((piece[int(a * 16000) : int(b * 16000)], label))
            self._trim()
            return labels

    def _labels(self, piece: np.ndarray, words: list[tuple[float, float]]) -> list[str] | None:
        from scipy.optimize import linear_sum_assignment

        from audio_service.pipeline.speakers import speaker_for

        parts, spans, t = [], [], 0.0
        for samples, label in [*self._history, (piece, None)]:
            spans.append((t, t + len(samples) / 16000, label))
            parts += [samples, self._gap]
            t += (len(samples) + len(self._gap)) / 16000
        turns = self._diarizer(Audio(np.concatenate(parts)), SpeakerBounds(max_speakers=self._max_speakers))
        base = spans[-1][0]
        found_per_word = [speaker_for(base + a, base + b, turns) for a, b in words]
        if any(f is None for f in found_per_word):
            return None
        # Diarizer labels map one-to-one onto the session labels they share most past audio with.
        found = sorted({t.speaker for t in turns})
        known = sorted({label for _, _, label in spans[:-1]})
        overlap = np.zeros((len(found), len(known)))
        for s0, s1, label in spans[:-1]:
            for turn in turns:
                overlap[found.index(turn.speaker), known.index(label)] += max(0.0, min(s1, turn.end) - max(s0, turn.start))
        rows, cols = linear_sum_assignment(overlap, maximize=True)
        mapping = {found[r]: known[c] for r, c in zip(rows, cols, strict=True) if overlap[r, c] > 0}
        # A speaker the diarizer matched to no known label: a known label it did not match (e.g. one
        # heard only briefly) is the likelier one, else a new speaker.
        unclaimed = [label for label in known if label not in mapping.values()]
        for current in dict.fromkeys(found_per_word):
            if current in mapping:
                continue
            own = [
                piece[int(a * 16000) : int(b * 16000)] for (a, b), f in zip(words, found_per_word, strict=True) if f == current
            ]
            if unclaimed:
                mapping[current] = self._closest_voice(np.concatenate(own), unclaimed)
                unclaimed.remove(mapping[current])
            else:
                mapping[current] = self._new_label()
        return [mapping[f] for f in found_per_word]

    def _closest_voice(self, piece: np.ndarray, labels: list[str]) -> str:
        """Of ``labels``, the known speaker whose past audio sounds most like ``piece``."""
        pasts = [np.concatenate([s for s, lab in self._history if lab == label]) for label in labels]
        embeddings = embed_many([piece, *pasts])
        return labels[int(np.argmax(embeddings[1:] @ embeddings[0]))]

    def _new_label(self) -> str:
        if self._max_speakers is not None and self._count >= self._max_speakers:
            return self._history[-1][1]
        self._count += 1
        return f"SPEAKER_{self._count - 1:02d}"

    def _trim(self) -> None:
        total = sum(len(s) for s, _ in self._history) / 16000
        while len(self._history) > 1 and total > self._context_s:
            total -= len(self._history[0][0]) / 16000
            self._history.pop(0)


def _runs(labels: list[str], words: list[tuple[float, float]]) -> list[tuple[tuple[float, float], str]]:
    """Consecutive words of one label as ((start, end), label); a run ends halfway into the pause after it."""
    runs: list[list] = []
    for (a, b), label in zip(words, labels, strict=True):
        if runs and runs[-1][2] == label:
            runs[-1][1] = b
        else:
            if runs:
                cut = (runs[-1][1] + a) / 2
                runs[-1][1], a = cut, cut
            runs.append([a, b, label])
    return [((a, b), label) for a, b, label in runs]


def _merge_short_runs(labels: list[str], words: list[tuple[float, float]]) -> list[str]:
    """Labels where every run shorter than ``MIN_RUN_SECONDS`` takes the label of the run before it
    (the one after it, for a first run): a word or two is too little audio to be sure of a change."""
    labels = list(labels)
    while True:
        runs = _runs(labels, words)
        short = [i for i, ((a, b), _) in enumerate(runs) if b - a < MIN_RUN_SECONDS]
        if len(runs) < 2 or not short:
            return labels
        i = min(short, key=lambda k: runs[k][0][1] - runs[k][0][0])
        into = runs[i - 1][1] if i else runs[1][1]
        a, b = runs[i][0]
        labels = [into if a <= w0 and w1 <= b + 1e-9 else lab for (w0, w1), lab in zip(words, labels, strict=True)]


def speaker_tracker_factory(registry: DiarizerRegistry, context_s: float = 40.0) -> Callable[..., SpeakerTracker]:
    """A factory the streaming endpoint calls once per session; all sessions share the offline diarizer."""

    def make(max_speakers: int | None = None, **_: object) -> SpeakerTracker:
        return SpeakerTracker(registry.offline(), context_s=context_s, max_speakers=max_speakers)

    return make
