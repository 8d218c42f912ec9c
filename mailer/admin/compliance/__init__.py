"""Compliance pages (compliance officers and admins): the consent ledger's state, consent audit
exports as background jobs, data subjects' requests (proof, receipt, access export, erasure)
and the staff audit log. Thin views over `mailer.compliance` and `mailer.consent`; every view
of personal data is put on the staff audit log first."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin_compliance", __name__, url_prefix="/admin/compliance")

# The views register themselves on `bp`.
from mailer.admin.compliance import audit, exports, ledger, subjects  # noqa: E402, F401
