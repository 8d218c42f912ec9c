"""SpamAssassin as a receiving server would run it, with local rules only.

`spamassassin --local --test-mode` (Debian package `spamassassin`, installed by scripts/test)
scores a message with the rules shipped in the package: no DNS blocklists, no Razor/Pyzor/DCC,
no Bayes (there is no trained database to be fair to), nothing reaches the network. The
report it writes is kept whole under test-artifacts/ so a failing score can be read rule by
rule.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "spamassassin"
_TOTAL = re.compile(r"Content analysis details:\s+\((-?[\d.]+) points?, [\d.]+ required\)")
_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")


@dataclass(frozen=True)
class Verdict:
    score: float
    rules: dict[str, float]  # rule name -> points
    report: str
    saved_to: Path

    def scoring(self) -> str:
        """The rules that added points, worst first: what to put in a bug report."""
        hits = sorted(self.rules.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{name} ({points:+.1f})" for name, points in hits if points)


def binary() -> str | None:
    return shutil.which("spamassassin")


def judge(message: bytes, name: str) -> Verdict:
    """Score `message` (the exact bytes the SMTP server received) and save the report as
    test-artifacts/spamassassin/<name>.txt (the message, SpamAssassin's headers and report)."""
    found = binary()
    if found is None:
        raise RuntimeError(
            "spamassassin not found: install it (Debian: apt-get install spamassassin)"
        )
    with tempfile.TemporaryDirectory(prefix="mailer-sa-") as home:
        result = subprocess.run(
            [
                found,
                "--local",  # no network tests at all
                "--test-mode",  # append the report with every rule that hit
                "--nocreate-prefs",
                "--cf=use_bayes 0",
                "--cf=bayes_auto_learn 0",
                "--cf=use_auto_whitelist 0",
            ],
            input=message,
            capture_output=True,
            timeout=180,
            check=False,
            env={**os.environ, "HOME": home},
            cwd=home,
        )
    output = result.stdout.decode("utf-8", "replace")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    saved = ARTIFACTS / f"{name}.txt"
    saved.write_text(output + ("\n--- stderr\n" + result.stderr.decode() if result.stderr else ""))
    total = _TOTAL.search(output)
    if result.returncode != 0 or total is None:
        raise RuntimeError(
            f"spamassassin gave no verdict (exit {result.returncode}): "
            f"{result.stderr.decode('utf-8', 'replace')[-800:]}"
        )
    table = output[total.end() :]
    rules: dict[str, float] = {}
    for line in table.splitlines():
        hit = _RULE.match(line)
        if hit:
            rules[hit.group(2)] = float(hit.group(1))
    return Verdict(float(total.group(1)), rules, output, saved)
