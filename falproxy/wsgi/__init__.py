"""The WSGI front end: ``SyncFalProxy`` for threaded WSGI servers (Flask, Django under WSGI)."""
