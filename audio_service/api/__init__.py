"""HTTP and WebSocket I/O only: parse and validate, call a service, format the answer.

Routes (``batch``, ``streaming``, ``alignments``, ``system``, ``demo``, ``metrics``), their setup
(``deps``, ``stream_setup``), forms, auth, errors mapped to HTTP once (``errors``), and operations
(quotas, middleware, drain, timeouts, sse, stream_ops).
"""
