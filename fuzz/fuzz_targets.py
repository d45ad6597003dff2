"""Coverage-guided fuzzing of the target parser with atheris (libFuzzer for Python).

Every input is fed to ``parse_target_header`` as raw header bytes. The parser may refuse
(``InvalidTarget``, 412, with a printable ASCII detail); anything else it does must be an
accepted target that urllib, httpx and the WHATWG parser (ada-url) all read as the same
https origin on an allowed host and port 443. Any other exception, or a disagreement, is
a crash that libFuzzer saves as a reproducer.

    pip install -e '.[test,bench]'
    python fuzz/fuzz_targets.py -max_total_time=600 -rss_limit_mb=1024 fuzz/corpus

The seeds (the accepted and refused corpora of tests/data) are written to the corpus
directory on first use. Results of recorded runs: fuzz/RESULTS.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

import atheris

with atheris.instrument_imports():
    import ada_url
    import httpx

    from falproxy.core.errors import InvalidTarget
    from falproxy.core.targets import ALLOWED_HOSTS, parse_target_header

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def check(data: bytes) -> None:
    try:
        target = parse_target_header(data)
    except InvalidTarget as refused:
        assert refused.status == 412
        assert refused.detail.isascii() and refused.detail.isprintable()
        return
    raw = data.decode("ascii")
    assert target.scheme == "https" and target.host in ALLOWED_HOSTS
    for url in (raw, target.url):
        split = urlsplit(url)
        assert (split.hostname or "").removesuffix(".") == target.host, url
        assert split.port in (None, 443) and split.username is None, url
        parsed = httpx.URL(url)
        assert parsed.host.removesuffix(".") == target.host and parsed.port in (None, 443), url
        assert parsed.userinfo == b"", url
        browser = ada_url.URL(url)
        assert browser.protocol == "https:" and browser.port == "", url
        assert browser.hostname.removesuffix(".") == target.host, url
        assert browser.username == "" and browser.password == "", url


def seed(corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    raws = [case["raw"] for case in json.loads((DATA / "targets_accept.json").read_text())]
    for group in json.loads((DATA / "targets_reject.json").read_text()):
        raws.extend(case["raw"] for case in group["cases"])
    for index, raw in enumerate(raws):
        (corpus / f"seed-{index:03d}").write_bytes(raw.encode("utf-8"))


if __name__ == "__main__":
    directories = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    if directories:
        seed(Path(directories[0]))
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()
