"""The segment rule tree: its JSON shape, and the marshmallow schema that validates it.

A rule is a group or a condition. Groups nest:

    {"all": [rule, ...]}    every rule matches (an empty list matches everyone)
    {"any": [rule, ...]}    at least one rule matches (an empty list matches no one)
    {"not": rule}           the rule does not match

A condition names a `field`, an `op` and, for most ops, a `value`:

    field             extra keys               ops (value)
    email                                      eq, contains, starts_with, ends_with (text);
                                               in (list of text)
    email_domain                               eq (domain); in (list of domains)
    attribute         key, type                see below
    topic             topic (slug or id)       eq (status); in (statuses); exists; not_exists
    locale                                     eq, ne (locale); in (list)
    form                                       eq (slug or id); in (list); exists; not_exists
    status                                     eq, ne (status); in (list)
    created_at                                 before, after (date-time); within_last_days (N)
    confirmed_at, last_open_at, last_click_at  as created_at, and exists; not_exists
    open_count, click_count, bounce_count      eq, ne, lt, lte, gt, gte (integer >= 0)
    campaign                                   opened, clicked, received (campaign id)
    recent_campaigns                           none_opened, none_clicked (N)

Examples:

    {"field": "attribute", "key": "plan", "type": "string", "op": "eq", "value": "pro"}
    {"field": "topic", "topic": "news", "op": "eq", "value": "active"}     subscribed to news
    {"field": "last_open_at", "op": "not_exists"}                          never opened
    {"field": "created_at", "op": "within_last_days", "value": 30}
    {"field": "recent_campaigns", "op": "none_opened", "value": 5}

What each condition means, exactly (the compiler and the evaluator both follow this):

- Email: addresses are stored in normal form (lower case, `normalise_email`), so the operand
  is lower-cased and compared with the stored address as is: case-insensitive in effect.
  `email_domain` is what follows the last `@`.
- `attribute` reads `Subscriber.attributes[key]` and compares it as `type`: `string`,
  `number`, `date` or `boolean`. A missing key, JSON null or a value of another type never
  matches any op except `not_exists` (`"5"` is not the number 5, `1` is not `true`). Strings
  compare by code point; `contains`/`starts_with`/`ends_with` ignore the case of A-Z only
  (the same on both databases). Numbers compare by their exact decimal value (exact on
  PostgreSQL; on SQLite as 64-bit integers and doubles, which agree for integers within
  +-2^53). A date is a string starting `YYYY-MM-DD`, alone or followed by `T` or a space
  (a date-time counts by the date as written). `exists` means "has a value of this type".
  Ops: string: eq ne lt lte gt gte in contains starts_with ends_with exists not_exists;
  number and date: eq ne lt lte gt gte in exists not_exists; boolean: eq ne exists not_exists.
  Keys: 1-64 characters of A-Z a-z 0-9 `_ . : / -` and space, not starting with a space.
- `topic`: the subscriber has a subscription to the topic (a string is a slug, an integer an
  id) with that status. "Subscribed to news" is `op eq, value active`; `exists` means a
  subscription row in any status.
- `form` is the form the subscriber first signed up through (`source_form_id`).
- Date-times: `before` is strictly earlier, `after` is at or after (so they split the
  timeline); a date-time without an offset is UTC. `within_last_days` N means between
  `now - N days` and `now`, both included, where `now` is given to the compiler. A subscriber
  with no value (never confirmed, never opened) matches none of these; `not_exists` finds them.
- Counts are human counts: `open_count` excludes machine opens (privacy proxies, scanners).
- `campaign`: the subscriber's delivery of that campaign was opened (by a human) / clicked /
  sent (`received`).
- `recent_campaigns`: take the subscriber's N most recent deliveries with status `sent` (by
  `sent_at`, latest first; ties by delivery id). Matches when there is at least one and none of
  them was opened (`none_opened`) / clicked (`none_clicked`). Someone who got fewer than N
  campaigns is judged on those they got; someone who got none does not match.

Limits: groups nest at most `MAX_DEPTH` deep, a tree holds at most `MAX_CONDITIONS`
conditions, a list value at most `grammar.MAX_LIST` items. Errors name the path in the tree,
as `rules.all.2.op` (see `RulesError`).

The table of fields, ops and value types is `mailer.segments.grammar`; this module walks a
tree against it and says what it all means.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields

from mailer.segments.grammar import (
    ATTRIBUTE_KEY,
    ATTRIBUTE_OPS,
    ATTRIBUTE_TYPES,
    FIELDS,
    SlugOrId,
    Value,
)

MAX_DEPTH = 6
MAX_CONDITIONS = 100

GROUPS = ("all", "any", "not")


class RulesError(ValueError):
    """Invalid rules; `errors` maps dotted paths (`rules.all.2.op`) to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


Errors = dict[str, list[str]]


def _join(path: str, key: str | int) -> str:
    return f"{path}.{key}" if path else str(key)


def _flatten(messages: Any, path: str, out: Errors) -> None:
    """marshmallow's nested messages (`{"value": {3: [...]}}`) as dotted paths."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            _flatten(value, _join(path, key), out)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out.setdefault(path, []).extend(messages)
    elif isinstance(messages, list):
        for item in messages:
            _flatten(item, path, out)
    else:
        out.setdefault(path, []).append(str(messages))


def _choices(options: Any) -> str:
    return "Must be one of: " + ", ".join(options) + "."


class _Checker:
    """One walk over a tree: the normalised tree, errors by path, the condition count."""

    def __init__(self) -> None:
        self.errors: Errors = {}
        self.conditions = 0

    def error(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def node(self, raw: Any, path: str, depth: int) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            self.error(path, "A rule is an object: a group (all, any, not) or a condition.")
            return None
        groups = [g for g in GROUPS if g in raw]
        if groups:
            return self.group(raw, groups, path, depth)
        if "field" in raw:
            return self.condition(raw, path)
        self.error(path, "A rule is a group (all, any, not) or a condition (field, op, value).")
        return None

    def group(
        self, raw: dict[str, Any], groups: list[str], path: str, depth: int
    ) -> dict[str, Any] | None:
        for key in raw:
            if key not in GROUPS:
                self.error(_join(path, key), "Unknown field.")
        if len(groups) > 1:
            self.error(path, "A group has exactly one of all, any, not.")
            return None
        kind = groups[0]
        if depth > MAX_DEPTH:
            self.error(path, f"Groups nest at most {MAX_DEPTH} levels deep.")
            return None
        inner = raw[kind]
        if kind == "not":
            child = self.node(inner, _join(path, kind), depth + 1)
            return None if child is None else {"not": child}
        if not isinstance(inner, list):
            self.error(_join(path, kind), "A list of rules.")
            return None
        children = [
            self.node(item, _join(path, f"{kind}.{i}"), depth + 1) for i, item in enumerate(inner)
        ]
        if any(c is None for c in children):
            return None
        return {kind: children}

    def condition(self, raw: dict[str, Any], path: str) -> dict[str, Any] | None:
        self.conditions += 1
        field = raw["field"]
        if not isinstance(field, str) or field not in FIELDS:
            self.error(_join(path, "field"), _choices(FIELDS))
            return None
        extra, ops = FIELDS[field]
        allowed = {"field", "op", "value", *extra}
        ok = True
        for key in raw:
            if key not in allowed:
                self.error(_join(path, key), "Unknown field.")
                ok = False
        out: dict[str, Any] = {"field": field}
        for key in extra:
            if key not in raw:
                self.error(_join(path, key), "Missing data for required field.")
                ok = False
        if field == "attribute":
            ops = self.attribute(raw, path, out)
            if ops is None:
                return None
        elif field == "topic" and "topic" in raw:
            try:
                out["topic"] = SlugOrId().deserialize(raw["topic"])
            except ValidationError as exc:
                _flatten(exc.messages, _join(path, "topic"), self.errors)
                ok = False
        op = raw.get("op")
        if op is None:
            self.error(_join(path, "op"), "Missing data for required field.")
            return None
        if not isinstance(op, str) or op not in ops:
            self.error(_join(path, "op"), _choices(ops))
            return None
        out["op"] = op
        value_field = ops[op]
        if value_field is None:
            if "value" in raw:
                self.error(_join(path, "value"), f"{op} takes no value.")
                return None
        elif "value" not in raw:
            self.error(_join(path, "value"), "Missing data for required field.")
            return None
        else:
            try:
                out["value"] = value_field().deserialize(raw["value"])
            except ValidationError as exc:
                _flatten(exc.messages, _join(path, "value"), self.errors)
                return None
        return out if ok else None

    def attribute(
        self, raw: dict[str, Any], path: str, out: dict[str, Any]
    ) -> dict[str, Value] | None:
        key, kind = raw.get("key"), raw.get("type")
        ok = True
        if "key" in raw and not (isinstance(key, str) and ATTRIBUTE_KEY.match(key)):
            self.error(
                _join(path, "key"),
                "1-64 characters: letters A-Z, digits, _ . : / - and spaces (not first).",
            )
            ok = False
        if "type" in raw and (not isinstance(kind, str) or kind not in ATTRIBUTE_TYPES):
            self.error(_join(path, "type"), _choices(ATTRIBUTE_TYPES))
            ok = False
        if not ok or "key" not in raw or "type" not in raw:
            return None
        out["key"], out["type"] = key, kind
        return ATTRIBUTE_OPS[kind]


def check(tree: Any) -> tuple[dict[str, Any] | None, Errors]:
    """Validate and normalise a tree. Returns (tree or None, errors by path relative to it)."""
    checker = _Checker()
    node = checker.node(tree, "", 1)
    if checker.conditions > MAX_CONDITIONS:
        checker.error("", f"At most {MAX_CONDITIONS} conditions in one segment.")
    if checker.errors:
        return None, checker.errors
    return node, {}


class RuleTree(fields.Field):
    """A rule tree; loads to its normalised form (JSON types only, date-times in UTC)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "metadata",
            {
                "type": "object",
                "description": 'A rule tree: {"all": [...]}, {"any": [...]}, {"not": rule} or '
                'a condition such as {"field": "attribute", "key": "plan", "type": "string", '
                '"op": "eq", "value": "pro"}. Reference: mailer/segments/rules.py.',
            },
        )
        super().__init__(**kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> dict[str, Any]:
        node, errors = check(value)
        if errors:
            raise ValidationError({(path or "_schema"): msgs for path, msgs in errors.items()})
        assert node is not None
        return node


class SegmentRules(Schema):
    """`{"rules": tree}`: what a preview takes, and the `rules` of a saved segment."""

    rules = RuleTree(required=True)


def validate_tree(tree: Any) -> dict[str, Any]:
    """The normalised tree; raises `RulesError` with paths under `rules`.

    Idempotent: a normalised tree validates to itself, so stored rules can be re-checked.
    """
    node, errors = check(tree)
    if errors:
        raise RulesError(
            {_join("rules", path) if path else "rules": m for path, m in errors.items()}
        )
    assert node is not None
    return node
