"""Speaker embeddings: resemblyzer's GE2E voice encoder (256-d; the weights ship in its wheel).

:func:`embed_many` embeds clips of speech; :class:`GE2EEmbedding` gives the encoder the interface
pyannote's diarization pipeline expects. torch and resemblyzer are imported on first use only.
"""

from __future__ import annotations

import numpy as np

from audio_service.models.segmentation import load_once
from audio_service.schema import SAMPLE_RATE

MIN_EMBED_SECONDS = 0.5  # less clean speech than this gives no reliable embedding


def voice_encoder():
    """The shared resemblyzer GE2E voice encoder (256-d speaker embeddings; weights ship in the wheel)."""

    def load():
        from resemblyzer import VoiceEncoder

        return VoiceEncoder("cpu", verbose=False)

    return load_once("voice_encoder", load)


def embed_many(clips: list[np.ndarray]) -> np.ndarray:
    """L2-normalised GE2E embeddings of several 16 kHz clips with one encoder call (the LSTM is costly
    to start per call); each is the mean over the clip's 1.6 s partials."""
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

    sample_rate = SAMPLE_RATE
    dimension = 256
    metric = "cosine"
    min_num_samples = int(MIN_EMBED_SECONDS * SAMPLE_RATE)

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
