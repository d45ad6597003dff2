"""Mount helpers for web frameworks: FastAPI/Starlette, Django and Flask.

Each module imports its framework, so import only the one your app uses, e.g.
``from falproxy.integrations.flask import register_fal_proxy``. ASGI paths (FastAPI,
Django under ASGI) run the core ``FalProxy``; WSGI paths (Flask, Django under WSGI) run
``SyncFalProxy``, which shares every rule and differs only in I/O.
"""
