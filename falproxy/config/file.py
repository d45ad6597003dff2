"""A TOML configuration file as the base layer of :class:`ProxyConfig`.

The file's keys are the settings' field names (``falproxy.config.SETTINGS``, column
``file_key``; the key may also be written ``fal_key``). A string given for a setting with a
text form is read exactly as its environment variable is (``"fal-ai/flux/**, fal-ai/x"``
for a list, ``"fal.run=http://..."`` for the upstream mapping), so one syntax works in
both; typed TOML values (lists, tables, numbers, booleans) are checked against the type.
Unknown keys are an error with a "did you mean": a typo must not silently fall back to a
default, least of all for a security setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from falproxy.config import loader
from falproxy.config.loader import CONFIG_FILE_ENV, FileSettings
from falproxy.config.settings import SETTINGS, ProxyConfig

__all__ = ["CONFIG_FILE_ENV", "config_from_sources", "load_config_file", "settings_from_mapping"]


def load_config_file(path: str | Path) -> FileSettings:
    """The settings of a TOML file as ``{field name: typed value}``, validated key by key."""
    return loader.load_file(path, SETTINGS)


def settings_from_mapping(document: Mapping[str, Any], *, source: str) -> FileSettings:
    """Check every key of a parsed document and read it as its setting's type."""
    return loader.from_mapping(document, source=source, settings=SETTINGS)


def config_from_sources(env: Mapping[str, str]) -> ProxyConfig:
    """The effective configuration: the file named by ``FALPROXY_CONFIG``, then ``env``."""
    config, warnings = load_with_warnings(env)
    loader.log_once(warnings)
    return config


def load_with_warnings(env: Mapping[str, str]) -> tuple[ProxyConfig, list[str]]:
    """:func:`config_from_sources` without logging: the warnings are returned instead."""
    return loader.load_sources(env, settings=SETTINGS, build=ProxyConfig)
