"""Speaker diarization: who spoke when.

Two backends, chosen per request through operator aliases (``Settings.diarizers``):

* ``offline`` (default, no model hub): pyannote.audio's own ``SpeakerDiarization`` machinery driven by
  packaged weights - the pyannote segmentation model shipped in the ``whisperx`` wheel finds up to three
  local speakers per 5 s window, resemblyzer's GE2E encoder embeds each local speaker, and pyannote's
  agglomerative clustering links them across windows with a *constrained* assignment (two local
  speakers of one window are never the same person), within the request's speaker bounds.
* ``community-1``: ``pyannote/speaker-diarization-community-1`` where a deployment provides a hub token
  or a local copy of the pipeline.

The models live in :mod:`audio_service.models.segmentation` and :mod:`audio_service.diarization.embedding`;
streaming's online tracker in :mod:`audio_service.diarization.tracker`. torch, pyannote and
resemblyzer (the ``diarization`` extra) are imported only when a diarizer is first used.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from audio_service.diarization.clustering import merge_same_voices
from audio_service.diarization.embedding import GE2EEmbedding
from audio_service.diarization.evidence import window_evidence
from audio_service.errors import InvalidRequestError, ModelUnavailableError
from audio_service.extras import require
from audio_service.models.segmentation import pyannote_input, segmentation_model
from audio_service.schema import SAMPLE_RATE, Audio, SpeakerTurn

if TYPE_CHECKING:  # pragma: no cover
    from pyannote.audio import Pipeline

    from audio_service.settings import Settings

log = logging.getLogger(__name__)

# Calibrated on two_speakers.wav, ami_dev00.wav, jfk, espeak-ng voices and mixtures of real turns (bench/diarization.py).
SEGMENTATION_THRESHOLD = 0.5  # onset of a local speaker in the segmentation model's output
SEGMENTATION_STEP = 0.2  # window hop as a fraction of the 5 s window
CLUSTER_METHOD = "centroid"
CLUSTER_THRESHOLD = 0.4  # first pass, deliberately fine (clustering.py merges same voices)
MIN_CLUSTER_SIZE = (
    4  # 5 folded a reader's few windows into another's cluster (a 5-reader meeting: 4); 3 split build_real_voices (5 of 4)
)
UNBOUNDED_SPEAKERS = 20


def _offline_pipeline_class():
    from pyannote.audio import Inference
    from pyannote.audio.core.io import Audio as PyannoteAudio
    from pyannote.audio.core.pipeline import Pipeline
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering
    from pyannote.audio.pipelines.speaker_diarization import SpeakerDiarization
    from pyannote.pipeline.parameter import ParamDict, Uniform

    class WindowConstrainedClustering(AgglomerativeClustering):
        """pyannote's agglomerative clustering (a fine first pass), then the second pass of
        :mod:`audio_service.diarization.clustering`: first-pass speakers merged by their whole clean
        speech, never across the segmentation model's window-level cannot-links."""

        def __call__(self, embeddings, segmentations=None, num_clusters=None, min_clusters=None, max_clusters=None, **kwargs):
            hard, soft, centroids = super().__call__(
                embeddings, segmentations=segmentations, num_clusters=num_clusters, max_clusters=max_clusters, **kwargs
            )
            count = int(hard.max()) + 1
            if num_clusters is not None or count < 2:
                return hard, soft, centroids
            evidence = window_evidence(hard, segmentations, count)
            samples = kwargs["file"]["waveform"][0].numpy()
            bound = None if max_clusters is None or max_clusters >= UNBOUNDED_SPEAKERS else max_clusters
            mapping = merge_same_voices(samples, evidence, min_clusters, bound, np.asarray(centroids))
            merged = np.where(hard >= 0, mapping[np.maximum(hard, 0)], hard)
            groups = int(mapping.max()) + 1
            centroids = np.stack([centroids[mapping == g].mean(axis=0) for g in range(groups)])
            soft = np.stack([soft[..., mapping == g].max(axis=-1) for g in range(groups)], axis=-1)
            return merged, soft, centroids

    class OfflineSpeakerDiarization(SpeakerDiarization):
        """pyannote's ``SpeakerDiarization`` with packaged models instead of hub checkpoints.

        Only the constructor differs: it skips the hub look-ups and PLDA (VBx needs it) and plugs in
        the GE2E adapter and agglomerative clustering with constrained assignment.
        """

        def __init__(self, model) -> None:
            Pipeline.__init__(self)
            self.legacy = False  # also returns the exclusive (dominant speaker) diarization
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
            self._audio = PyannoteAudio(sample_rate=SAMPLE_RATE, mono="downmix")
            self.clustering = WindowConstrainedClustering(metric="cosine", constrained_assignment=True)
            self._expects_num_speakers = False

    return OfflineSpeakerDiarization


@dataclass(frozen=True)
class SpeakerBounds:
    min_speakers: int | None = None
    max_speakers: int | None = None


class Diarizer(Protocol):
    name: str

    def __call__(self, audio: Audio, bounds: SpeakerBounds) -> list[SpeakerTurn]: ...


def _annotation_to_turns(annotation, exclusive=None) -> list[SpeakerTurn]:
    """pyannote ``Annotation`` -> sorted turns labelled SPEAKER_00, SPEAKER_01, ... in order of appearance.

    With ``exclusive`` (the same speakers, one dominant speaker at a time), the turns are the
    exclusive ones plus, as ``background`` turns, the overlapped speech the exclusive ones leave out.
    """
    tracks = [(s, label, False) for s, _, label in annotation.itertracks(yield_label=True)]
    if exclusive is not None:
        tracks = [(s, label, False) for s, _, label in exclusive.itertracks(yield_label=True)]
        for label in annotation.labels():
            dominant = exclusive.label_timeline(label).support()
            tracks += [(s, label, True) for s in annotation.label_timeline(label).support().extrude(dominant)]
    labels: dict[str, str] = {}
    turns = []
    for segment, label, background in sorted(tracks, key=lambda t: (t[0].start, t[2])):
        name = labels.setdefault(label, f"SPEAKER_{len(labels):02d}")
        turns.append(SpeakerTurn(float(segment.start), float(segment.end), name, background))
    return turns


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
            output = pipeline(
                pyannote_input(audio),
                min_speakers=bounds.min_speakers,
                max_speakers=bounds.max_speakers or UNBOUNDED_SPEAKERS,
            )
            annotation = getattr(output, "speaker_diarization", output)
            exclusive = getattr(output, "exclusive_speaker_diarization", None)
        return _annotation_to_turns(annotation, exclusive)


class CommunityDiarizer:
    """``pyannote/speaker-diarization-community-1`` from a local directory or the hub (with a token)."""

    name = "pyannote-community-1"

    def __init__(self, source: str, token: str | None) -> None:
        self._source = source
        self._token = token
        self._pipeline: Pipeline | None = None
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
                pyannote_input(audio), min_speakers=bounds.min_speakers, max_speakers=bounds.max_speakers
            )
        annotation = getattr(output, "speaker_diarization", output)
        return _annotation_to_turns(annotation)


COMMUNITY_1 = "pyannote/speaker-diarization-community-1"


class DiarizerRegistry:
    """Client-sent ``diarization_model`` names -> the one shared diarizer backing them."""

    def __init__(self, settings: Settings) -> None:
        self._aliases = dict(settings.diarization.diarizers)
        self._default = settings.diarization.default
        self._backends: dict[str, Callable[[], Diarizer]] = {"offline": OfflineDiarizer}
        source = str(settings.diarization.pipeline_dir) if settings.diarization.pipeline_dir else None
        if source or settings.diarization.hub_token:
            self._backends["community-1"] = lambda: CommunityDiarizer(
                source or COMMUNITY_1,
                settings.diarization.hub_token.get_secret_value() if settings.diarization.hub_token else None,
            )
        self._instances: dict[str, Diarizer] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """The names that work on this server."""
        return sorted(n for n, b in self._aliases.items() if b in self._backends)

    def resolve(self, name: str | None) -> str:
        """The backend for ``name`` (None = default); 400 naming the extra if diarization is not installed,
        or listing working names if ``name`` is not one."""
        require("diarization", param="diarize")
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

    def _instance(self, backend: str) -> Diarizer:
        with self._lock:
            if backend not in self._instances:
                self._instances[backend] = self._backends[backend]()
            return self._instances[backend]
