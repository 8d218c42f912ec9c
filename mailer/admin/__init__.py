"""Admin pages for marketers and compliance officers: server-rendered, thin over the domain.

Each area has its own module and blueprint (listed in `mailer.admin.blueprints`); every view
declares the roles it admits through `mailer.admin.access.roles_required`, which the access
matrix test reads. Pages satisfy the app's Content-Security-Policy: no inline script or style;
behaviour comes from htmx (vendored through package.json) and `static/admin.js`.
"""
