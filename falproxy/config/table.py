"""The shape of the settings table: what each setting is called where, and how it is read.

:class:`~falproxy.config.settings.ProxyConfig` declares every setting once, as a dataclass
field whose metadata is built by :func:`setting`: its type, default, variable, group
(:mod:`falproxy.config.groups`), a one-line doc and the reference's longer meaning.
:func:`settings_of` turns those fields into :class:`Setting` rows
(``falproxy.config.SETTINGS``), which the environment loader, the TOML loader, the groups,
``describe()`` and the generated configuration reference all read.

A :class:`Kind` says how one sort of value is written: its text form (an environment
variable, or a string in the file), its typed TOML form, and how a value given in code is
normalised before the config is frozen (a list where a tuple is stored, say).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from falproxy.config import parsing
from falproxy.config.groups import GROUP_NAMES
from falproxy.core.errors import InvalidSetting
from falproxy.core.keys import FalCredential
from falproxy.core.rate_rules import RateLimit, parse_rate_limits
from falproxy.core.redact import mask_url
from falproxy.core.spend_rules import SpendLimit, parse_spend_limits

METADATA_KEY = "falproxy.setting"


def _same(name: str, value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Kind:
    """One sort of setting value: its name in the reference and how each source writes it."""

    name: str
    # The text form (environment variable, TOML string); ValueError carries the problem.
    parse: Callable[[str], Any] | None
    # A typed TOML value (not a string) to the stored value; ValueError carries the problem.
    from_file: Callable[[Any], Any]
    # A value given in code to its stored form, before freezing; raises InvalidSetting.
    normalise: Callable[[str, Any], Any] = _same
    # Whether an error may quote the text the user wrote (never for secrets, lists, URLs).
    echo: bool = False


def _file_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _file_integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    return value


def _file_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("must be a number of seconds")
    return float(value)


def _file_boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _file_strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of strings (or one comma-separated string)")
    return tuple(item.strip() for item in value)


def _file_mapping(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError('must be a table of strings, e.g. { "fal.run" = "http://..." }')
    return {str(host).lower(): base for host, base in value.items()}


def _file_rules(value: Any) -> tuple[RateLimit, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of rules (or one string with rules separated by ';')")
    return tuple(rule for item in value for rule in parse_rate_limits(item))


def _not_in_file(value: Any) -> Any:
    raise ValueError("can only be set in code")


def _normalise_strings(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise InvalidSetting(name, "must be a list or tuple of strings")
    return tuple(value)


def _normalise_mapping(name: str, value: Any) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidSetting(name, "must be a mapping of fal host to base URL")
    return MappingProxyType(dict(value))


def _normalise_rules(name: str, value: Any) -> tuple[RateLimit, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise InvalidSetting(name, "must be a list of RateLimit rules")
    rules: list[Any] = []
    for item in value:
        if isinstance(item, str):
            try:
                rules.extend(parse_rate_limits(item))
            except ValueError as exc:
                raise InvalidSetting(name, str(exc)) from None
        else:
            rules.append(item)
    return tuple(rules)


def _normalise_hooks(name: str, value: Any) -> tuple[Any, ...]:
    if callable(value):
        return (value,)
    if not isinstance(value, list | tuple):
        raise InvalidSetting(name, "must be a list of async callables")
    return tuple(value)


def _normalise_credential(name: str, value: Any) -> FalCredential | None:
    if isinstance(value, str):
        return FalCredential(value, source=name)
    return value  # type: ignore[no-any-return]


TEXT = Kind("string", parsing.text, _file_text)
# Shown masked: a URL may carry a user name and password.
URL = Kind("URL", parsing.text, _file_text)
SECONDS = Kind("seconds", parsing.seconds, _file_number, echo=True)
INTEGER = Kind("integer", parsing.integer, _file_integer, echo=True)
BOOLEAN = Kind("boolean", parsing.boolean, _file_boolean, echo=True)
LIST = Kind("comma-separated list", parsing.words, _file_strings, _normalise_strings)
UPSTREAMS = Kind("HOST=BASE_URL pairs", parsing.upstream_pairs, _file_mapping, _normalise_mapping)
RATE_RULES = Kind("rate-limit rules", parsing.rate_rules, _file_rules, _normalise_rules)


def _text_spend_rules(raw: str) -> tuple[SpendLimit, ...]:
    try:
        return parse_spend_limits(raw)
    except ValueError as exc:
        raise ValueError(f"has a {exc}") from None


def _file_spend_rules(value: Any) -> tuple[SpendLimit, ...]:
    if isinstance(value, str):
        return parse_spend_limits(value)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of rules (or one string with rules separated by ';')")
    return tuple(rule for item in value for rule in parse_spend_limits(item))


def _normalise_spend_rules(name: str, value: Any) -> tuple[SpendLimit, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise InvalidSetting(name, "must be a list of SpendLimit rules")
    rules: list[Any] = []
    for item in value:
        if isinstance(item, str):
            try:
                rules.extend(parse_spend_limits(item))
            except ValueError as exc:
                raise InvalidSetting(name, str(exc)) from None
        else:
            rules.append(item)
    return tuple(rules)


# FALPROXY_SPEND_LIMIT (issue 20): the same three forms as the rate-limit rules.
SPEND_RULES = Kind(
    "spend-limit rules", _text_spend_rules, _file_spend_rules, _normalise_spend_rules
)
CREDENTIAL = Kind("fal key (KEY_ID:KEY_SECRET)", None, _file_text, _normalise_credential)
HOOKS = Kind("async callables", None, _not_in_file, _normalise_hooks)


@dataclass(frozen=True, slots=True)
class _Declared:
    kind: Kind
    doc: str
    env: str | None
    secret: bool
    group: str
    meaning: str


def setting(
    default: Any,
    kind: Kind,
    doc: str,
    meaning: str | None = None,
    *,
    env: str | None,
    group: str,
    secret: bool = False,
) -> Any:
    """A ``ProxyConfig`` field carrying its row of the settings table (secrets not in repr).

    ``doc`` is one short line; ``meaning`` the reference's text (``doc`` when omitted).
    ``group`` names one of :data:`~falproxy.config.groups.GROUPS` (checked here, at import).
    An unhashable default (a read-only mapping) is given as a factory, as dataclasses ask.
    """
    if group not in GROUP_NAMES:
        raise ValueError(f"unknown settings group {group!r} (known: {sorted(GROUP_NAMES)})")
    declared = _Declared(kind, doc, env, secret, group, meaning or doc)
    metadata = {METADATA_KEY: declared}
    if isinstance(default, Mapping):
        frozen = MappingProxyType(dict(default))
        return field(default_factory=lambda: frozen, repr=not secret, metadata=metadata)
    return field(default=default, repr=not secret, metadata=metadata)


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the settings table: ``falproxy.config.SETTINGS`` holds one per field.

    ``name`` is the ``ProxyConfig`` keyword and attribute; ``env`` the environment variable
    (``None``: code only; ``FAL_KEY`` also accepts ``FAL_KEY_ID`` + ``FAL_KEY_SECRET``);
    ``file_key`` the TOML key (``None``: code only); ``kind`` the value's type name;
    ``parse`` its text form; ``default`` the value when unset; ``doc`` one short line;
    ``secret`` whether it is masked everywhere; ``group`` the group it is checked with and
    listed under (``config.timeouts``...); ``deprecated_env`` older variable names;
    ``meaning`` the configuration reference's text.
    """

    name: str
    env: str | None
    file_key: str | None
    kind: str
    parse: Callable[[str], Any] | None
    default: Any
    doc: str
    secret: bool
    group: str
    deprecated_env: tuple[str, ...] = ()
    meaning: str = ""
    value_kind: Kind = field(default=TEXT, repr=False, compare=False)

    def show(self, value: Any) -> Any:
        """``value`` for display (``falproxy check``, ``describe()``): JSON-ready, masked."""
        if value is None:
            return None
        if self.value_kind is CREDENTIAL:
            return value.masked()
        if self.secret:
            if isinstance(value, tuple):
                return f"{len(value)} token(s)" if value else None
            return mask_url(value) if self.value_kind is URL else "****"
        if self.value_kind is HOOKS:
            return len(value)
        if self.value_kind is URL:
            return mask_url(value)
        if isinstance(value, Mapping):
            return {key: mask_url(base) for key, base in value.items()}
        if isinstance(value, tuple):
            return [item if isinstance(item, str) else str(item) for item in value]
        return value


def _default_of(item: dataclasses.Field[Any]) -> Any:
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return item.default


def settings_of(cls: type, deprecated: Mapping[str, tuple[str, ...]]) -> tuple[Setting, ...]:
    """The table rows of a dataclass whose fields were declared with :func:`setting`."""
    rows = []
    for item in dataclasses.fields(cls):
        declared: _Declared = item.metadata[METADATA_KEY]
        code_only = declared.kind.parse is None and declared.kind.from_file is _not_in_file
        rows.append(
            Setting(
                name=item.name,
                env=declared.env,
                file_key=None if code_only else item.name,
                kind=declared.kind.name,
                parse=declared.kind.parse,
                default=_default_of(item),
                doc=declared.doc,
                secret=declared.secret,
                group=declared.group,
                deprecated_env=deprecated.get(item.name, ()),
                meaning=declared.meaning,
                value_kind=declared.kind,
            )
        )
    return tuple(rows)
