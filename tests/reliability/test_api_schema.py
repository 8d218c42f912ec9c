"""schemathesis against /api/v1/openapi.json, with every role's key: the API keeps the promises
its own document makes.

For each operation in the document and each role, schemathesis generates requests from the
declared parameters and bodies (Hypothesis underneath): valid input with whatever ids it likes,
valid input with the ids of real rows (so that success answers are reached too), and input the
schema forbids. Every answer must be no 5xx, a status code the operation documents (or its
default), the declared content type, and a body that matches the declared schema: success
bodies their own schema, errors the one error shape `{"errors": {field: [message]}}`. Bounded:
a few examples per operation and role, derandomised so that a failure is the same next run.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode, checks
from schemathesis.core.failures import FailureGroup

from mailer.accounts.models import Role
from mailer.accounts.users import create_api_key
from tests.campaigns.conftest import make_audience, make_campaign
from tests.factories import make_form

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
# Examples per operation: (role, valid or invalid input, ids of real rows in the path?) -> how
# many. Admin reaches every route; the other roles meet their 403s.
BUDGET = {
    (Role.ADMIN, GenerationMode.POSITIVE, False): 5,
    (Role.ADMIN, GenerationMode.POSITIVE, True): 5,
    (Role.ADMIN, GenerationMode.NEGATIVE, True): 4,
    (Role.MARKETER, GenerationMode.POSITIVE, True): 3,
    (Role.COMPLIANCE, GenerationMode.POSITIVE, True): 3,
}
# Compiling MJML runs Node once per distinct template: keep those operations to a few examples.
SLOW = {"POST /api/v1/templates", "PUT /api/v1/templates/{template_id}"}


@pytest.fixture
def rows(app: Flask, session) -> dict[str, Any]:
    """A row of each kind a path can name, for the "real ids" examples."""
    topic, subscriber_ids = make_audience(session, 3)
    campaign = make_campaign(session, topic)
    form = make_form(session, slug="shop", topics=("news",))
    session.commit()
    _, admin = create_api_key(session, Role.ADMIN, "segments")
    segment = app.test_client().post(
        "/api/v1/segments",
        json={
            "name": "Pro",
            "rules": {
                "field": "attribute",
                "key": "plan",
                "type": "string",
                "op": "eq",
                "value": "x",
            },
        },
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert segment.status_code == 201, segment.get_json()
    return {
        "template_id": campaign.template_id,
        "campaign_id": campaign.id,
        "topic_id": topic.id,
        "form_id": form.id,
        "subscriber_id": subscriber_ids[1],
        "segment_id": segment.get_json()["id"],
        "email": "reader1@example.org",
    }


def _operations(schema) -> list:
    """Every operation; those that erase or delete last, so the others see the rows."""
    found = [result.ok() for result in schema.get_all_operations()]
    return sorted(found, key=lambda op: op.method.upper() == "DELETE" or "erase" in op.path)


def _explore(
    strategy, examples: int, headers: dict[str, str], where: str
) -> tuple[list[str], int, int]:
    """Run `examples` generated requests of one operation: (problems, requests, 5xx answers)."""
    problems: list[str] = []
    seen = {"tried": 0, "5xx": 0}

    @hypothesis_settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case) -> None:
        seen["tried"] += 1
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # the app raised instead of answering
            seen["5xx"] += 1
            problems.append(f"{where}: raised {type(exc).__name__}: {exc!s:.200}")
            return
        if response.status_code >= 500:
            seen["5xx"] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:  # several checks failed (a BaseExceptionGroup)
            problems.extend(f"{where}: {failure!s:.1500}" for failure in group.exceptions)
        except AssertionError as failure:
            problems.append(f"{where}: {failure!s:.1500}")

    run()
    return problems, seen["tried"], seen["5xx"]


def test_every_operation_keeps_its_documented_promises(app: Flask, session, rows, recorder):
    keys = {role: create_api_key(session, role, f"schemathesis {role.value}")[1] for role in Role}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = _operations(schema)
    assert len(operations) >= 30, [op.label for op in operations]
    problems: list[str] = []
    tried = 0

    for op in operations:
        names = [p.name for p in op.path_parameters]
        for (role, mode, real_ids), budget in BUDGET.items():
            if real_ids and not names and role is Role.ADMIN and mode is GenerationMode.POSITIVE:
                continue  # nothing to fix in the path: the first pass covered it
            fixed = {n: rows[n] for n in names if n in rows} if real_ids else None
            found, n, errors = _explore(
                op.as_strategy(mode, path_parameters=fixed),
                min(budget, 3) if op.label in SLOW else budget,
                {"Authorization": f"Bearer {keys[role]}"},
                f"{op.label} as {role.value}, {mode.value} data{' (real ids)' if fixed else ''}",
            )
            problems += found
            tried += n
            recorder.server_errors += errors

    recorder.inputs_tried += tried
    assert tried >= len(operations) * 8
    unique = list(dict.fromkeys(problems))
    assert not unique, f"{len(unique)} answers broke the document:\n" + "\n\n".join(unique[:15])
