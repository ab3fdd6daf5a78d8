"""The batch pipeline's stages (no web framework imports here): vad -> asr -> align -> diarize."""
