"""The pure core: every rule of a proxied call, with no I/O of its own.

Targets, policy, header and body-framing rules, CORS and origin rules, errors, events and
a call's lifecycle. Every front end (ASGI, WebSocket, WSGI) calls these, so a rule added
here reaches all of them at once. Nothing in this package imports from the rest of falproxy.
"""
