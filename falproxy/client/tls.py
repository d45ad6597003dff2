"""The upstream TLS context: verifying, host names checked, system store or a CA file."""

from __future__ import annotations

import ssl


def upstream_ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """A client context that fails closed on an untrusted or misnamed certificate.

    ``ca_file`` replaces the system store (a private CA, the tests, the benchmark); without
    it the default store is used. ALPN offers only HTTP/1.1, the one protocol spoken here.
    """
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = True  # already the default: stated because it is the point
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    return context
