"""A minimal Django project serving the fal proxy under ASGI (uvicorn) and WSGI (gunicorn)."""
