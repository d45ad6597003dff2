"""ASGI entry point: ``uvicorn examples.django_project.asgi:application``.

The proxy route and /healthz, /readyz, /metrics go to falproxy's ASGI core before Django,
so bodies stream both ways and WebSockets work; everything else is Django.

Try it with no key, against the fake fal (answers like fal's, nothing billed)::

    falproxy fake --port 9000 &
    FALPROXY_FAKE_URL=http://127.0.0.1:9000 uvicorn examples.django_project.asgi:application

Started with neither a key nor the fake, it stops with the one line ``falproxy serve`` prints.
"""

import os

from django.core.asgi import get_asgi_application

from falproxy import FalProxy, ProxyConfig
from falproxy.integrations.django import fal_proxy_asgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_project.settings")

django_application = get_asgi_application()
application = fal_proxy_asgi(django_application, FalProxy(ProxyConfig.load()))
# Without the dispatcher (``...asgi:django_application``), the urls.py view serves the
# proxy: it streams responses too, but Django reads request bodies whole and refuses
# WebSockets.
