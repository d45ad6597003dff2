"""The proxy route and /healthz, /readyz, /metrics (WSGI path; under ASGI, asgi.py serves
them before Django), and a page."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from examples.page import page
from falproxy import ProxyConfig
from falproxy.integrations.django import fal_proxy_urls
from falproxy.wsgi.proxy import SyncFalProxy

proxy = SyncFalProxy(ProxyConfig.load())


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(page("Django", proxy.config.route))


urlpatterns = [
    *fal_proxy_urls(proxy),
    path("", index),
]
