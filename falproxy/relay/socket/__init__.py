"""One relayed WebSocket, the same for every front end that serves sockets.

A front end (the ASGI app, the native ``falproxy serve`` protocol) hands
:func:`~falproxy.relay.socket.session.serve_socket` one
:class:`~falproxy.relay.socket.exchange.SocketExchange`: the handshake as a scope, and
the few ways to answer it and move messages. Admission, the upstream connection, the
pumps with their bounds, the close codes and the call's one event are done here once.

======================  ================================================================
module                  role
======================  ================================================================
``exchange``            what a front end gives the relay: ``SocketExchange``
``session``             admission -> open upstream -> accept -> relay -> one event
``pumps``               the two message pumps and the idle watch; who stopped decides
``upstream``            the only code that talks WebSocket to fal (``websockets`` client)
``close``               which close code and reason are passed on, either way
======================  ================================================================
"""
