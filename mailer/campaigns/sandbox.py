"""The Jinja sandbox campaign content is rendered in, and the checks that run when it is saved.

Templates, subjects and preheaders are written by marketers and rendered for every recipient,
so a template must never reach Python internals (server-side template injection). Three layers:

1. `check()` reads the Jinja syntax tree when content is saved: names starting with `_`,
   method calls, unknown variables, fields or filters, `{% autoescape %}`, macros, imports and
   inheritance are refused with the line they are on. Errors surface at save time, not at send.
2. A trial render in the sandbox with a sample subscriber catches what the tree cannot show.
3. At send time the environment is an `ImmutableSandboxedEnvironment` with no globals, a short
   list of filters, and only `Record`s (read-only mappings without methods) in the context:
   never ORM objects. Subscriber data is data: HTML output is autoescaped, nothing is evaluated.
4. Every render, the trial one included, runs on a budget (`budget.py`): loop passes, output,
   the length of each value built and the work of filters and operators are bounded, and `%`
   formatting of text is refused, so content cannot exhaust memory or time either.

Reserved names (`_click`, `_open_pixel`) are inserted by our own link rewriting; user content
cannot name them because every `_` name is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mailer.campaigns import budget

# Top-level variables a template may use, and the fields of the two records.
SUBSCRIBER_FIELDS = frozenset({"email", "name", "first_name", "last_name", "locale", "attributes"})
CAMPAIGN_FIELDS = frozenset({"name", "subject"})
BODY_NAMES = frozenset(
    {
        "subscriber",
        "attributes",
        "unsubscribe_url",
        "preferences_url",
        "view_in_browser_url",
        "campaign",
    }
)

# Filters that cannot reach attributes by name, call anything, or blow up memory.
SAFE_FILTERS = frozenset(
    {
        "abs",
        "capitalize",
        "count",
        "d",
        "default",
        "e",
        "escape",
        "first",
        "float",
        "int",
        "join",
        "last",
        "length",
        "lower",
        "replace",
        "reverse",
        "round",
        "string",
        "striptags",
        "title",
        "trim",
        "truncate",
        "upper",
        "urlencode",
        "wordcount",
        "wordwrap",
    }
)

# Statements that would let content escape the autoescaping or pull in other templates.
_REFUSED_STATEMENTS: dict[type[nodes.Node], str] = {
    nodes.Macro: "macros are not allowed",
    nodes.CallBlock: "call blocks are not allowed",
    nodes.Block: "blocks are not allowed",
    nodes.Extends: "template inheritance is not allowed",
    nodes.Include: "includes are not allowed",
    nodes.Import: "imports are not allowed",
    nodes.FromImport: "imports are not allowed",
    nodes.EvalContextModifier: "changing autoescaping is not allowed",
    nodes.ScopedEvalContextModifier: "changing autoescaping is not allowed",
    nodes.NSRef: "namespaces are not allowed",
    nodes.Pow: "the ** operator is not allowed",
}
# Names that are not `_`-prefixed but only ever lead to internals.
_INTERNAL_ATTRIBUTES = frozenset(
    {"mro", "format", "format_map", "func_globals", "f_globals", "gi_frame", "gi_code"}
)


@dataclass(frozen=True)
class Problem:
    line: int | None
    message: str
    where: str = ""  # "" for the field's own source, else e.g. "the compiled HTML"

    def __str__(self) -> str:
        if self.line is None:
            return self.message if not self.where else f"{self.message} (in {self.where})"
        if self.where:
            return f"{self.message} (in {self.where}, line {self.line})"
        return f"{self.message} at line {self.line}"


class ContentError(ValueError):
    """Content that cannot be saved or sent: `errors` maps each field to its problems."""

    def __init__(
        self, field: str, problems: list[str], errors: dict[str, list[str]] | None = None
    ) -> None:
        self.field = field
        self.problems = problems
        self.errors = errors or {field: problems}
        super().__init__("; ".join(f"{f}: {', '.join(p)}" for f, p in self.errors.items()))


class Record:
    """A read-only mapping for templates: its keys, and no methods a template could call.

    `attributes.items` is the attribute called "items", not a dict method, because there is
    none: Jinja's attribute lookup falls through to the key. Missing keys are undefined, so
    `default()` applies to them.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_data", data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("read-only")

    def __str__(self) -> str:
        return ""


def freeze_value(value: Any) -> Any:
    """JSON data as templates see it: dicts become `Record`s, lists tuples; None and "" vanish
    (so `default()` applies)."""
    if isinstance(value, dict):
        return Record(
            {str(k): freeze_value(v) for k, v in value.items() if v is not None and v != ""}
        )
    if isinstance(value, list | tuple):
        return tuple(freeze_value(v) for v in value)
    return value


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with every render's cost bounded (see `budget`)."""

    code_generator_class = budget.BudgetCodeGenerator
    context_class = budget.BudgetContext
    intercepted_binops = budget.INTERCEPTED_BINOPS

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        return budget.binop(context, op, left, right)


def environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    """HTML (autoescaped) or plain text (subject, preheader source, text part)."""
    env = _Sandbox(
        autoescape=autoescape,
        undefined=ChainableUndefined,
        keep_trailing_newline=True,
    )
    env.globals.clear()
    env.filters = {name: budget.bounded_filter(name, env.filters[name]) for name in SAFE_FILTERS}
    env.tests = {
        name: budget.bounded_filter(name, test, budget.READ_WEIGHT)
        for name, test in env.tests.items()
    }
    return env


HTML = environment(autoescape=True)
TEXT = environment(autoescape=False)


def _stored_names(tree: nodes.Template) -> set[str]:
    names = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    return names | {"loop"}


def _record_fields(name: str, campaign_fields: frozenset[str]) -> frozenset[str] | None:
    return {"subscriber": SUBSCRIBER_FIELDS, "campaign": campaign_fields}.get(name)


def _key(node: nodes.Getattr | nodes.Getitem) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    return None


def tree_problems(
    source: str,
    *,
    names: frozenset[str] = BODY_NAMES,
    campaign_fields: frozenset[str] = CAMPAIGN_FIELDS,
    where: str = "",
) -> list[Problem]:
    """What is wrong with `source` as Jinja, read from its syntax tree (nothing is run)."""
    try:
        tree = HTML.parse(source)
    except TemplateSyntaxError as exc:
        return [Problem(exc.lineno, f"template syntax error: {exc.message}", where)]
    problems: list[Problem] = []
    local = _stored_names(tree)

    def add(node: nodes.Node, message: str) -> None:
        problems.append(Problem(node.lineno, message, where))

    for node in tree.find_all(nodes.Node):
        refused = next((m for t, m in _REFUSED_STATEMENTS.items() if isinstance(node, t)), None)
        if refused:
            add(node, refused)
        elif isinstance(node, nodes.Call):
            add(node, "calls are not allowed here; use a filter, e.g. {{ name | upper }}")
        elif isinstance(node, nodes.Name) and node.ctx == "load":
            if node.name.startswith("_"):
                add(node, f"'{node.name}' is reserved")
            elif node.name not in names and node.name not in local:
                add(node, f"unknown variable '{node.name}'")
        elif isinstance(node, nodes.Name) and node.name.startswith("_"):
            add(node, f"'{node.name}' is reserved")
        elif isinstance(node, nodes.Getattr | nodes.Getitem):
            key = _key(node)
            if key is None:
                continue
            if key.startswith("_") or key in _INTERNAL_ATTRIBUTES:
                add(node, f"'{key}' cannot be used in a template")
            elif isinstance(node.node, nodes.Name) and node.node.name not in local:
                fields = _record_fields(node.node.name, campaign_fields)
                if fields is not None and key not in fields:
                    known = ", ".join(sorted(fields))
                    add(node, f"unknown field '{key}' of {node.node.name} (known: {known})")
        elif (
            isinstance(node, nodes.Mod)
            and isinstance(node.left, nodes.Const)
            and isinstance(node.left.value, str)
        ):
            add(node, "formatting text with % is not allowed; join text with ~")
        elif isinstance(node, nodes.Filter) and node.name not in SAFE_FILTERS:
            add(node, f"unknown filter '{node.name}'")
        elif isinstance(node, nodes.Keyword) and node.key == "attribute":
            value = node.value.value if isinstance(node.value, nodes.Const) else None
            if not isinstance(value, str) or any(p.startswith("_") for p in value.split(".")):
                add(node, "attribute= must name a field, not something starting with _")
    problems.sort(key=lambda p: p.line or 0)
    return problems


def error_line(exc: BaseException) -> int | None:
    """The template line a render error happened on (Jinja rewrites tracebacks to show it)."""
    line = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


_RECORD_MISSING = re.compile(r"'[\w.]*Record object' has no attribute '([^']*)'")


def describe(exc: BaseException) -> str:
    """An error's message without our internal class names."""
    text = (exc.message if isinstance(exc, TemplateError) else None) or str(exc)
    return _RECORD_MISSING.sub(r"'\1' is not set (use default())", text)


def trial_problems(
    source: str, context: Mapping[str, Any], *, autoescape: bool, where: str = ""
) -> list[Problem]:
    """Render `source` once in the sandbox; any error becomes a problem with its line."""
    env = HTML if autoescape else TEXT
    try:
        env.from_string(source).render(context)
    except SecurityError as exc:
        return [Problem(error_line(exc), f"not allowed: {describe(exc)}", where)]
    except TemplateSyntaxError as exc:
        return [Problem(exc.lineno, f"template syntax error: {exc.message}", where)]
    except Exception as exc:  # any runtime failure of user content
        return [Problem(error_line(exc), f"template error: {describe(exc)}", where)]
    return []


def messages(problems: Iterable[Problem]) -> list[str]:
    return [str(p) for p in problems]
