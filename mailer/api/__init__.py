"""The REST API under /api/v1: flask-smorest blueprints, marshmallow in and out, Bearer keys.

Errors share the one shape of the whole app (`{"errors": {field: [message]}}`, see
`mailer.web`); nested fields are named by their dotted path (`rules.all.0.op`).
"""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api as _Api
from marshmallow import Schema, fields

from mailer.extensions import csrf

PREFIX = "/api/v1"


class ErrorSchema(Schema):
    """The one error shape, as the OpenAPI document declares it for every error answer (its
    "Error" component), so clients and schema checkers see what is really sent."""

    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        required=True,
        metadata={
            "description": "Messages by field, nested fields as a dotted path: "
            '`{"rules.all.0.op": ["..."]}`'
        },
    )


class Api(_Api):
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        # `mailer.web` answers every HTTPException, API or not, in one shape.
        pass


api = Api()


def init_app(app: Flask) -> None:
    app.config.update(
        API_TITLE="mailer",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
    )
    api.init_app(
        app,
        spec_kwargs={
            "security": [{"bearer": []}],
            "info": {
                "description": "Authenticate with `Authorization: Bearer <key>` "
                "(`mailer apikey create --role ...`). Errors: "
                '`{"errors": {"field": ["what is wrong"]}}`.'
            },
        },
    )
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    from mailer.api import blueprints

    for blueprint in blueprints.ALL:
        csrf.exempt(blueprint)  # no cookies: a Bearer key cannot be forged cross-site
        api.register_blueprint(blueprint)
