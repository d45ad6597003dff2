"""WebSockets on the ASGI front end: handshake admission, the frame relay, close codes."""
