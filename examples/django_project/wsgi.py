"""WSGI entry point, with threaded workers so slow streams do not block each other::

gunicorn --worker-class gthread --threads 4 examples.django_project.wsgi:application
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_project.settings")

application = get_wsgi_application()

# Django imports the URLconf on the first request; importing it here makes a configuration
# mistake (no FAL_KEY) stop start-up with one line instead of failing that request.
import examples.django_project.urls  # noqa: E402, F401
