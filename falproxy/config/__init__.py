"""Configuration: the frozen ``ProxyConfig`` and the loaders that build it (environment, TOML)."""
