"""The TLS stub's certificate: the tests' throwaway CA (tests/support/tls.py), made at run time.

Nothing here is committed key material: every run writes a fresh CA and leaf into its
temporary folder, and they vanish with it. The leaf names both ``127.0.0.1`` (what
falproxy, the Node proxy and the raw proxy connect to) and ``STUB_NAME`` (nginx checks
names with X509_check_host, which does not match IP addresses, so it verifies this one).
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.tls import Pki, make_pki  # noqa: E402

STUB_NAME = "stub.bench.test"  # .test is reserved (RFC 2606): never a real host
VALID_FOR = datetime.timedelta(days=1)  # long enough for any run, useless after it


def make_test_pki(folder: Path) -> Pki:
    """A P-256 CA and a leaf for the stub, written as PEM files into ``folder``."""
    return make_pki(folder, (STUB_NAME, "127.0.0.1"), valid_for=VALID_FOR)
