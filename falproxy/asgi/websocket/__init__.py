"""WebSockets on the ASGI front end: the ASGI adapter of the relay layer's socket session."""
