"""Speakers: who spoke when, for whole files and for streams.

- :mod:`.offline`: the offline diarizers (pyannote with the packaged segmentation model and GE2E
  embeddings; the community pipeline where configured) and their registry;
- :mod:`.evidence`: what the segmentation model says per window (who is heard alone, who together);
- :mod:`.clustering`: merging first-pass speakers with the same voice, which counts the speakers;
- :mod:`.embedding`: GE2E speaker embeddings;
- :mod:`.words`: speakers onto words and segments, and runs of words of one speaker;
- :mod:`.tracker`: speaker labels for a stream, segment by segment.

Importing this package is cheap; torch and pyannote load on first use.
"""
