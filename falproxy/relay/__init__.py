"""The async relay of an admitted HTTP call, the same for every front end.

A front end (the ASGI app, the native ``falproxy serve`` protocol, and the WSGI adapter
from its private loop thread) hands
:func:`~falproxy.relay.call.serve_proxied` one :class:`~falproxy.relay.exchange.Exchange`:
its request, how to read the body, how to write an answer or a relayed response. The
admission, the body plan, the upstream call and the call's one event are done here once.
"""
