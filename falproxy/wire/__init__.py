"""HTTP/1.1 on the wire, written once for the native server and the upstream client.

Sans-I/O: field rules, the framing decision, chunk encoding, bodiless statuses, head caps,
the one response-head writer, the llhttp parsers with their leniencies pinned, and the
connection state tables. Nothing here touches a socket.
"""
