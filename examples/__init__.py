"""Runnable example apps, one per framework, each serving the proxy from the environment."""
