"""Audio intake: decoding any common format to 16 kHz mono, PCM helpers, preprocessing, URL fetch."""
