"""Configuration: the frozen ``ProxyConfig``, its settings table, and the loaders.

``SETTINGS`` is the table of every setting (a tuple of :class:`Setting`): field name,
environment variable, TOML key, type, text parser, default, one-line doc, the reference's
meaning, whether it is secret, and its group. The configuration reference is generated
from it, and the groups (:mod:`falproxy.config.groups`) take their members from it.
"""

from falproxy.config.settings import SETTINGS, ProxyConfig
from falproxy.config.table import Setting

__all__ = ["SETTINGS", "ProxyConfig", "Setting"]
