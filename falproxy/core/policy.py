r"""Which targets the proxy may call: URL globs, endpoint globs and token minting.

The allow-list is the security boundary of a proxy that spends its owner's fal credits. Globs keep
the Node proxy's picomatch syntax (``dot: true``) so configurations carry over, but we compile a
small subset ourselves: unsupported syntax is a start-up error, never a silent mismatch. Unlike the
Node proxy, endpoint globs apply to every method and to queue URLs, and token-minting bodies are
policed, because a minted JWT is later used *without* the proxy.

Syntax: ``*`` any run of characters but ``/`` (a lone ``*`` needs at least one); ``**`` as a whole
segment any number of segments, none included (``fal.run/**`` matches ``fal.run``), spanning
``/ ? & =``, and inside a longer segment a ``*``; ``?`` one character but ``/``; ``\c`` a literal
``c``. ``[ ] { } ( ) ! + |`` are refused. Differences from picomatch: no implicit optional trailing
``/`` and no empty match for a lone ``*`` (both stricter); ``**`` may cross ``.``/``..`` segments,
which targets.py refuses in paths and which mean nothing in a query.

Queue result/status/cancel URLs name only ``[ns/]owner/alias``. Such a request-scoped URL passes
when some endpoint glob matches that app id or an id below it, since the URL cannot say which
endpoint the request was submitted to (request ids are unguessable). A token alias passes when
some endpoint glob can match an id ``<any owner>/<alias>[/...]``, or ``<ns>/<any owner>/<alias>``
where the glob spells the namespace literally or covers it with ``**``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeGuard
from urllib.parse import unquote

from falproxy.core.errors import BadRequest, EndpointNotAllowed, InvalidTarget, MethodNotAllowed
from falproxy.core.targets import ALLOWED_HOSTS, Target, is_valid_segment

__all__ = [
    "DEFAULT_ALLOWED_URLS",
    "TOKEN_PATH",
    "AppRef",
    "Policy",
    "alias_matcher",
    "app_id_of",
    "compile_glob",
]

# Node proxy defaults plus the REST calls the JS client needs (docs/fal-protocol.md §9, §10, §14).
DEFAULT_ALLOWED_URLS: Final[tuple[str, ...]] = (
    "fal.run/**",
    "queue.fal.run/**",
    r"rest.fal.ai/storage/upload/initiate\?storage_type=fal-cdn-v3",
    r"rest.fal.ai/storage/upload/initiate-multipart\?storage_type=fal-cdn-v3",
    # A Node default; the client sends multipart completion directly (docs/fal-protocol.md §10).
    r"rest.fal.ai/storage/upload/complete-multipart\?storage_type=fal-cdn-v3",
    "rest.fal.ai/tokens/",
)
# JWT minting (docs/fal-protocol.md §9); the trailing slash is part of fal's route.
TOKEN_PATH: Final = "/tokens/"
# The REST hosts that mint tokens (docs/fal-protocol.md §2: rest.alpha.fal.ai is the old name).
TOKEN_HOSTS: Final = frozenset({"rest.fal.ai", "rest.alpha.fal.ai"})
# Hosts whose paths start with an endpoint id (docs/fal-protocol.md §2-3); REST hosts are not apps.
APP_HOSTS: Final = frozenset({"fal.run", "ws.fal.run", "queue.fal.run"})
# The queue host, whose request URLs drop the endpoint path (docs/fal-protocol.md §3, §7).
QUEUE_HOST: Final = "queue.fal.run"
# Leading id segments that prefix owner/alias (docs/fal-protocol.md §3).
NAMESPACES: Final = frozenset({"workflows", "comfy"})
# Suffixes clients add to an id on fal.run: streaming, realtime (docs/fal-protocol.md §3, §8, §11).
RUN_SUFFIXES: Final = frozenset({"stream", "realtime"})
# What may follow ``requests/<rid>`` on the queue, and the one method each takes: result, status,
# status stream and logs are read with GET, cancel is a PUT (docs/fal-protocol.md §7.2-7.5;
# issue 12).
QUEUE_REQUEST_METHODS: Final[dict[tuple[str, ...], str]] = {
    (): "GET",
    ("status",): "GET",
    ("status", "stream"): "GET",
    ("logs",): "GET",
    ("cancel",): "PUT",
}
QUEUE_REQUEST_TAILS: Final = frozenset(QUEUE_REQUEST_METHODS)
# A token request is a few hundred bytes; anything far larger is not one.
MAX_TOKEN_BODY: Final = 64 * 1024
# An ``allowed_apps`` entry: a fal alias such as "fast-lcm-diffusion" (docs/fal-protocol.md §9).
_ALIAS: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# One glob token: an escaped character, a run of stars, or any other single character.
_GLOB_TOKEN: Final = re.compile(r"\\(.)|(\*+)|(.)", re.DOTALL)
# picomatch syntax we do not implement: refused rather than read as literal characters.
_REFUSED_GLOB_CHARS: Final = frozenset("[]{}()!+|")
# Regex sources for a leading ``**/``, and for a ``/**`` anywhere else.
_LEADING_GLOBSTAR, _GLOBSTAR = "(?:.*/)?", "(?:/.*)?"


@dataclass(frozen=True, slots=True)
class AppRef:
    """The fal app a target calls."""

    app_id: str  # full endpoint id, or "[ns/]owner/alias" when request_scoped; no trailing "/"
    request_scoped: bool  # a queue result/status/cancel URL, which drops the endpoint path
    method: str | None = None  # the one method a request-scoped URL takes (None: any proxied)


@dataclass(frozen=True, slots=True)
class _Segment:
    """One ``/``-separated piece of a glob; ``regex`` is None for ``**``."""

    regex: re.Pattern[str] | None
    source: str
    sample: str | None  # a valid path segment the piece matches; None if none exists


@dataclass(frozen=True, slots=True)
class _Glob:
    pattern: re.Pattern[str]
    segments: tuple[_Segment, ...]


def compile_glob(pattern: str) -> re.Pattern[str]:
    """Compile a picomatch-style glob to an anchored regex; ValueError for unsupported syntax."""
    return _parse_glob(pattern).pattern


def app_id_of(target: Target) -> AppRef | None:
    """The app a target on an app host calls; None on other hosts or without owner/alias.

    The id is canonical: ``…/dev/`` and ``…/dev`` name the same app (fal routes both), so a
    trailing slash is dropped and an exact rule or limit on ``…/dev`` holds for both spellings.
    """
    if target.host not in APP_HOSTS:
        return None
    segments = target.path[1:].removesuffix("/").split("/")
    size = 3 if segments[0] in NAMESPACES else 2  # [ns/]owner/alias
    if len(segments) < size or not all(segments[:size]):
        return None
    if target.host == QUEUE_HOST and _is_request_url(segments[size:]):
        method = QUEUE_REQUEST_METHODS[tuple(segments[size + 2 :])]
        return AppRef("/".join(segments[:size]), request_scoped=True, method=method)
    if target.host != QUEUE_HOST and len(segments) > size and segments[-1] in RUN_SUFFIXES:
        segments = segments[:-1]
    return AppRef("/".join(segments), request_scoped=False)


def _is_request_url(rest: list[str]) -> bool:
    """Whether the segments after [ns/]owner/alias are ``requests/<rid>`` plus a known tail."""
    if len(rest) < 2 or rest[0] != "requests" or not rest[1]:
        return False
    return tuple(rest[2:]) in QUEUE_REQUEST_TAILS


# What an endpoint glob must be able to match (docs/fal-protocol.md §3), and the setting that
# holds them: both named by start-up errors and by the 403 of an app outside the globs.
ENDPOINT_FORM: Final = "[ns/]owner/alias[/...]"
ENDPOINTS_SETTING: Final = "FALPROXY_ALLOWED_ENDPOINTS"
# An app id in a 403 detail is cut like the metrics label (ops/metrics.MAX_APP_LABEL_LENGTH);
# a start-up error quotes at most this much of a wrong entry.
MAX_SHOWN_APP_ID: Final = 100
MAX_SHOWN_ENTRY: Final = 200
_REFUSED: Final = EndpointNotAllowed.default_detail

# Allowed verdicts remembered per policy (a few hundred bytes each).
MAX_REMEMBERED_VERDICTS = 4096


class Policy:
    """Allowed URL globs, allowed endpoint globs (empty: all) and the token lifetime cap."""

    def __init__(
        self,
        allowed_urls: Sequence[str] = DEFAULT_ALLOWED_URLS,
        allowed_endpoints: Sequence[str] = (),
        max_token_expiration: int = 300,
        *,
        token_minting: bool = True,
    ) -> None:
        if isinstance(allowed_urls, str) or isinstance(allowed_endpoints, str):
            raise TypeError("Policy: pass globs as a sequence of strings, not one string")
        if not _is_positive_int(max_token_expiration):
            raise ValueError("Policy: max_token_expiration must be a positive integer")
        self._urls = tuple(_compiled(p, url=True).pattern for p in allowed_urls)
        self._endpoints = tuple(_compiled(p, url=False) for p in allowed_endpoints)
        self._max_token_expiration = max_token_expiration
        self._token_minting = token_minting
        # Allowed (target, method) -> app id: a browser polls one status URL every second,
        # and parsed targets are cached, so the same verdict is asked for again and again.
        # Only allowed calls are remembered; bounded, oldest first out.
        self._allowed: dict[tuple[Target, str], str | None] = {}

    @property
    def max_token_expiration(self) -> int:
        """The longest token lifetime forwarded to fal, in seconds."""
        return self._max_token_expiration

    @property
    def allows_all_endpoints(self) -> bool:
        """True when no endpoint globs were given: every app on an allowed URL passes."""
        return not self._endpoints

    def check(self, target: Target, method: str) -> str | None:
        """Return the target's canonical app id (None on REST hosts, or unrestricted and unknown).

        ``method`` is the HTTP method (a WebSocket handshake is a GET). Raises InvalidTarget
        when no URL glob matches, EndpointNotAllowed when endpoints are restricted and the app
        is outside them or cannot be determined, or when the target mints tokens and minting
        is off, MethodNotAllowed (with ``Allow``) when a queue request URL gets another method.
        """
        key = (target, method)
        if key in self._allowed:
            return self._allowed[key]
        app_id = self._check(target, method)
        if len(self._allowed) >= MAX_REMEMBERED_VERDICTS:
            del self._allowed[next(iter(self._allowed))]
        self._allowed[key] = app_id
        return app_id

    def _check(self, target: Target, method: str) -> str | None:
        subject = target.glob_subject
        if not any(url.fullmatch(subject) for url in self._urls):
            raise InvalidTarget("The target URL is not allowed by the proxy's policy")
        if not self._token_minting and self.is_token_request(target):
            raise EndpointNotAllowed("Token minting is turned off on this proxy")
        ref = app_id_of(target)
        if self._endpoints and target.host in APP_HOSTS and not self._allows_app(ref):
            raise _refusal(ref)
        if ref is not None and ref.method is not None and method != ref.method:
            raise MethodNotAllowed(headers={"allow": ref.method})
        return ref.app_id if ref else None

    def token_apps(self, body: bytes) -> tuple[str, ...]:
        """The aliases a body returned by :meth:`check_token_request` names."""
        apps = _load_json_object(body).get("allowed_apps")
        return tuple(app for app in apps if isinstance(app, str)) if isinstance(apps, list) else ()

    def is_token_request(self, target: Target) -> bool:
        """Whether the target mints tokens, however its path is spelt (case, escapes, params)."""
        first = unquote(target.path).lower().split("/")[1].split(";")[0]
        return target.host in TOKEN_HOSTS and first == TOKEN_PATH.strip("/")

    def check_token_request(self, body: bytes) -> bytes:
        """Validate a token-minting body; return the JSON to forward, expiration capped.

        Only ``allowed_apps`` and ``token_expiration`` are forwarded. Raises BadRequest for a
        malformed body, EndpointNotAllowed for an alias outside the policy.
        """
        data = _load_json_object(body)
        apps = data.get("allowed_apps")
        if not isinstance(apps, list) or not apps:
            raise BadRequest("allowed_apps must be a non-empty list of app aliases")
        if not all(isinstance(app, str) and _ALIAS.fullmatch(app) for app in apps):
            raise BadRequest("allowed_apps must be a non-empty list of app aliases")
        expiration = data.get("token_expiration", self.max_token_expiration)
        if not _is_positive_int(expiration):
            raise BadRequest("token_expiration must be a positive integer")
        if not all(self._allows_alias(app) for app in apps):
            raise EndpointNotAllowed("A token was requested for an app outside the policy")
        capped = {
            "allowed_apps": apps,
            "token_expiration": min(expiration, self.max_token_expiration),
        }
        return json.dumps(capped, separators=(",", ":")).encode()

    def _allows_app(self, ref: AppRef | None) -> bool:
        if ref is None:
            return False
        if not ref.request_scoped:
            return any(glob.pattern.fullmatch(ref.app_id) for glob in self._endpoints)
        path = [_exactly(segment) for segment in ref.app_id.split("/")]
        return any(_matches_prefix(glob.segments, path) for glob in self._endpoints)

    def _allows_alias(self, alias: str) -> bool:
        if not self._endpoints:
            return True
        return any(_may_name_alias(glob, alias) for glob in self._endpoints)


def alias_matcher(pattern: str) -> Callable[[str], bool]:
    """Whether an endpoint glob can match some app a token minted for an alias may call.

    A minted token names aliases only and works for ``<any owner>/<alias>[/...]`` (and the
    namespaced forms), so a glob counts a mint when it can match any such id (fal-protocol §9).
    """
    glob = _compiled(pattern, url=False)
    return lambda alias: _may_name_alias(glob, alias)


def _may_name_alias(glob: _Glob, alias: str) -> bool:
    plain = [_any_owner, _exactly(alias)]
    paths = [plain, *([_literally(ns), *plain] for ns in sorted(NAMESPACES))]
    return any(_matches_prefix(glob.segments, path) for path in paths)


# A predicate on a glob segment's (regex, sample): can it match the next id segment?
_Accepts = Callable[[re.Pattern[str], str | None], bool]


def _exactly(value: str) -> _Accepts:
    return lambda regex, _sample: regex.fullmatch(value) is not None


def _literally(value: str) -> _Accepts:
    """Only a glob segment spelling ``value`` itself (a wildcard owner is not a namespace)."""
    return lambda regex, _sample: regex.pattern == re.escape(value)


def _any_owner(_regex: re.Pattern[str], sample: str | None) -> bool:
    return sample is not None and sample not in NAMESPACES


def _matches_prefix(glob: tuple[_Segment, ...], path: Sequence[_Accepts]) -> bool:
    """Whether ``glob`` matches some valid id that is ``path``, or ``path`` plus more segments."""
    states = _skip_globstars(glob, {0})
    for accepts in path:
        live = [(i, glob[i]) for i in states if i < len(glob)]
        step = {i if s.regex is None else i + 1 for i, s in live if _consumes(s, accepts)}
        states = _skip_globstars(glob, step)
    return any(all(s.regex is None or s.sample is not None for s in glob[i:]) for i in states)


def _consumes(segment: _Segment, accepts: _Accepts) -> bool:
    """A ``**`` consumes any id segment; another glob segment asks ``accepts``."""
    return segment.regex is None or accepts(segment.regex, segment.sample)


def _skip_globstars(glob: tuple[_Segment, ...], states: set[int]) -> set[int]:
    """A ``**`` may match no segment at all (consecutive ones were merged at compile time)."""
    return states | {i + 1 for i in states if i < len(glob) and glob[i].regex is None}


def _refusal(ref: AppRef | None) -> EndpointNotAllowed:
    """The 403 of an app outside the endpoint globs, naming the app and the setting."""
    if ref is None:
        return EndpointNotAllowed(f"{_REFUSED}: the target names no app id {ENDPOINT_FORM}")
    shown = ref.app_id[:MAX_SHOWN_APP_ID]
    error = EndpointNotAllowed(f"{_REFUSED}: app {shown} is not in {ENDPOINTS_SETTING}")
    error.app_id = ref.app_id
    return error


def _compiled(pattern: str, *, url: bool) -> _Glob:
    """A URL or endpoint glob compiled; ValueError names the entry, the form and a fix."""
    problem, fix = _problem(pattern, url=url)
    if problem is None:
        return _parse_glob(pattern)
    hint = f"; did you mean {_quoted(fix)}?" if fix and _problem(fix, url=url)[0] is None else ""
    raise ValueError(f"entry {_quoted(pattern)} {problem}{hint}")


def _problem(pattern: str, *, url: bool) -> tuple[str | None, str]:
    """What is wrong with a glob (None: nothing), and the glob probably meant ("": none)."""
    if url and "://" in pattern:
        return "has a scheme: URL globs match host/path?query", pattern.partition("://")[2]
    if not url:
        rest = pattern.partition("://")[2] if "://" in pattern else pattern
        first, _, after = rest.lstrip("/").partition("/")
        wrong = f"endpoint globs are app ids {ENDPOINT_FORM}"
        if rest != pattern or first.lower() in ALLOWED_HOSTS:
            fix = after if first.lower() in ALLOWED_HOSTS or "." in first else rest.lstrip("/")
            return f"has a scheme or a host: {wrong}", fix
        if pattern.startswith("/"):
            return f"starts with /: {wrong}", pattern.lstrip("/")
    try:
        glob = _parse_glob(pattern)
    except ValueError as exc:
        return f"is an invalid pattern: {exc}", ""
    if not url and not _matches_prefix(glob.segments, [_any_segment, _any_segment]):
        return f"can never match an app id {ENDPOINT_FORM}", f"*/{pattern}/**"
    return None, pattern


def _quoted(pattern: str) -> str:
    """An entry as an error shows it: quoted, cut to a readable length."""
    return repr(pattern if len(pattern) <= MAX_SHOWN_ENTRY else pattern[:MAX_SHOWN_ENTRY] + "…")


def _any_segment(_regex: re.Pattern[str], sample: str | None) -> bool:
    return sample is not None


def _parse_glob(pattern: str) -> _Glob:
    if not pattern:
        raise ValueError("empty glob")
    pieces: list[_Segment] = []
    for tokens in _split_tokens(pattern):
        if tokens == [("*", "**")]:
            if not pieces or pieces[-1].regex is not None:
                pieces.append(_Segment(None, "", None))
        else:
            pieces.append(_compile_segment(tokens))
    return _Glob(re.compile(rf"\A(?:{_source(pieces)})\Z", re.DOTALL), tuple(pieces))


def _split_tokens(pattern: str) -> list[list[tuple[str, str]]]:
    """Tokens per segment: ("lit", c), ("*", stars) or ("?", "?")."""
    segments: list[list[tuple[str, str]]] = [[]]
    for escaped, stars, char in _GLOB_TOKEN.findall(pattern):
        if char == "/" or escaped == "/":
            segments.append([])
        elif stars or char == "?":
            segments[-1].append(("*", stars) if stars else ("?", "?"))
        elif char == "\\":
            raise ValueError("glob ends with a lone backslash")
        elif char in _REFUSED_GLOB_CHARS:
            raise ValueError("glob uses unsupported syntax ([ ] { } ( ) ! + |); escape it with \\")
        else:
            segments[-1].append(("lit", escaped or char))
    return segments


def _compile_segment(tokens: list[tuple[str, str]]) -> _Segment:
    star = "[^/]+" if len(tokens) == 1 else "[^/]*"  # a lone * never matches an empty segment
    wildcards = {"*": star, "?": "[^/]"}
    source = "".join(wildcards.get(kind) or re.escape(text) for kind, text in tokens)
    sample = "".join(text if kind == "lit" else "a" for kind, text in tokens)
    regex = re.compile(source, re.DOTALL)
    return _Segment(regex, source, sample if is_valid_segment(sample) else None)


def _source(pieces: list[_Segment]) -> str:
    """Join segment regexes with "/"; a ``**`` also covers the "/" on one side of it."""
    parts: list[str] = []
    for index, piece in enumerate(pieces):
        if piece.regex is None:
            parts.append(
                ".*" if len(pieces) == 1 else _LEADING_GLOBSTAR if not index else _GLOBSTAR
            )
        else:
            joined = not index or parts[-1] == _LEADING_GLOBSTAR
            parts.append(piece.source if joined else "/" + piece.source)
    return "".join(parts)


def _load_json_object(body: bytes) -> dict[str, object]:
    if len(body) > MAX_TOKEN_BODY:
        raise BadRequest("The token request body is too large")
    try:  # re-serialised after validation, so duplicate keys or NaN never reach fal
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("The token request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("The token request body must be a JSON object")
    return data


def _is_positive_int(value: object) -> TypeGuard[int]:
    """A JSON integer above zero; ``True`` is an int to Python but not to us."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
