"""ASGI entry point: ``uvicorn examples.django_project.asgi:application``.

The proxy route goes to falproxy's ASGI core before Django, so bodies stream both ways
and (where supported) WebSockets work; everything else is Django.
"""

import os

from django.core.asgi import get_asgi_application

from falproxy import FalProxy, ProxyConfig
from falproxy.integrations.django import fal_proxy_asgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_project.settings")

application = fal_proxy_asgi(get_asgi_application(), FalProxy(ProxyConfig.from_env()))
