"""Admission: identity, before_request hooks, rate limits and the fal key, for every call.

Async, and the same for every front end; the WSGI adapter runs it on a private loop thread.
"""
