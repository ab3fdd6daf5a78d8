"""The uvicorn server the CLI runs: a drain before shutdown, and protocols bounded against slow clients."""
