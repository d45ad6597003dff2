"""WSGI entry point, with threaded workers so slow streams do not block each other::

gunicorn --worker-class gthread --threads 4 examples.django_project.wsgi:application
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_project.settings")

application = get_wsgi_application()
