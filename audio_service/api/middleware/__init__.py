"""ASGI middleware of the app: request ids and logs, the replica header, upload size and time limits."""
