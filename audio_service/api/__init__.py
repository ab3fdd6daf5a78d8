"""HTTP and WebSocket I/O only: parse and validate, call a service, format the answer."""
