"""Production entry point: `gunicorn wsgi:app` (with `mailer worker` processes beside it)."""

from mailer import create_app

app = create_app()
