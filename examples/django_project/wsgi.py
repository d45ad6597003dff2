"""WSGI entry point, with threaded workers so slow streams do not block each other::

gunicorn --worker-class gthread --threads 4 examples.django_project.wsgi:application

Try it with no key, against the fake fal (answers like fal's, nothing billed)::

    falproxy fake --port 9000 &
    FALPROXY_FAKE_URL=http://127.0.0.1:9000 \\
        gunicorn --worker-class gthread --threads 4 examples.django_project.wsgi:application

Started with neither a key nor the fake, it stops with the one line ``falproxy serve`` prints.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_project.settings")

application = get_wsgi_application()

# Django imports the URLconf on the first request; importing it here makes a configuration
# mistake (no FAL_KEY) stop start-up with one line instead of failing that request.
import examples.django_project.urls  # noqa: E402, F401
