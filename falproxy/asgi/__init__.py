"""The ASGI front end: the ``FalProxy`` app, its HTTP relay and its WebSocket relay."""
