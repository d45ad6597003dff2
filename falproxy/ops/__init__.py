"""Operations: metrics, readiness, graceful shutdown and the access log.

What an operator reads or drives (``/metrics``, ``/readyz``, SIGTERM, log lines), shared by
every front end and integration.
"""
