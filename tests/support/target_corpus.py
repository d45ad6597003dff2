"""The target-URL corpora (tests/data) and generators shared by the parser's tests."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from falproxy.core.targets import ALLOWED_HOSTS

DATA = Path(__file__).parent.parent / "data"


ACCEPT: list[dict[str, str]] = json.loads((DATA / "targets_accept.json").read_text("utf-8"))


REJECT: list[tuple[str | None, dict[str, Any]]] = [
    (group["reason"], case)
    for group in json.loads((DATA / "targets_reject.json").read_text("utf-8"))
    for case in group["cases"]
]


REJECT_IDS = [
    f"{group['group']}: {case['label']}"
    for group in json.loads((DATA / "targets_reject.json").read_text("utf-8"))
    for case in group["cases"]
]


def raw_of(case: dict[str, Any]) -> str:
    return str(case["raw"]) + "a" * int(case.get("pad", 0))


@st.composite
def generated_urls(draw: st.DrawFn) -> str:
    paths = st.sampled_from(["", "/", "/fal-ai/flux/dev/", "/fal-ai/flux/dev/"])
    head = "".join(draw(part) for part in (SCHEMES, USERINFO, HOSTS, PORTS, paths))
    middle = draw(st.sampled_from(["", "?", "?logs=1&x=", "?a=?b", "#"]))
    return head + draw(TEXT) + middle + draw(TEXT)


@st.composite
def mutated_urls(draw: st.DrawFn) -> str:
    raw = draw(st.sampled_from([case["raw"] for case in ACCEPT if "scheme" not in case]))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(raw)))
        cut = draw(st.integers(0, 2))
        raw = raw[:at] + draw(TEXT.map(lambda text: text[:4])) + raw[at + cut :]
    return raw


# Plausible choices are repeated so that a fair share of generated URLs is accepted.
SCHEMES = st.sampled_from(
    ["https://"] * 24 + ["HTTPS://", "http://", "wss://", "https:/", "https:///", "//", ""]
)


USERINFO = st.sampled_from([""] * 30 + ["user@", "fal.run@", "a:b@", "@", "fal.run:443@"])


HOSTS = st.sampled_from(
    sorted(ALLOWED_HOSTS) * 8
    + ["FAL.RUN", "fal.run.", "fal.run..", "evil.com", "fal.run.evil.com", "notfal.run"]
    + ["127.0.0.1", "0x7f.1", "[::1]", "%66al.run", "fal.ru\u043f", "xn--fal-9na.run", ""]
)


PORTS = st.sampled_from(["", ":443"] * 10 + [":80", ":", ":0443", ":443:443"])


SAFE = [*string.ascii_letters, *string.digits, "-", ".", "_", "~", "/x", "=", "&", "%20"]
TRICKY = [*"!$'()*+,;:@/?#%\\[]{}|^`\"<> \t\r\n\x00", "\u043f", "\uff0e", "%2e", "%2F", "%41"]
PIECES = st.sampled_from(SAFE * 16 + TRICKY + ["..", "//", "/.", "/.."])

TEXT = st.lists(PIECES, max_size=8).map("".join)
