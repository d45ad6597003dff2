"""The standalone server: ``falproxy serve|fake|check`` and the app its workers run."""
