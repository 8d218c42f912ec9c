"""Who ran a command, for the staff audit log: commands that read or erase personal data, or
check the ledger, are on record as the admin pages' accesses are."""

from __future__ import annotations

import getpass

from mailer.compliance import staff_log
from mailer.extensions import db


def cli_staff(actor: str | None = None) -> staff_log.Staff:
    """Who ran a command, as the staff audit log records it: `--actor` where the command has
    one, else the operating-system user, marked as the command line."""
    if not actor:
        try:
            actor = getpass.getuser()
        except (KeyError, OSError):  # no login name and no passwd entry (some containers)
            actor = "unknown"
    return staff_log.Staff(api_key_name=f"cli:{actor}"[:200])


def record(
    action: str,
    command: str,
    subject_email: str | None = None,
    details: dict | None = None,
    actor: str | None = None,
) -> None:
    """Put a command's access to personal data on the staff audit log, before any output."""
    staff_log.record(
        db.session,
        cli_staff(actor),
        action,
        f"cli mailer {command}",
        subject_email=subject_email,
        details=details,
    )
