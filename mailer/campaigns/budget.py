"""What one render of campaign content may spend: loops, output, and the work of filters and
operators.

The sandbox (`sandbox.py`) keeps a template away from Python internals; this module keeps it
from exhausting the machine. A template that passes every check is still a small program run
for every recipient, and its cost can hang on subscriber data (`{% for c in attributes.bio %}`),
so the limits hold per render (one recipient's subject, HTML or text) at save time, in previews
and at send time alike. Past a limit, rendering stops with a `LimitExceeded` naming the limit
and, where the template is on the stack, its line; callers turn it into a content error for the
field (at send: for that one recipient).

Limits, all per render:
- `MAX_ITERATIONS` loop passes, nested loops counting every inner pass;
- `MAX_OUTPUT` characters written, captured `{% set %}`/`{% filter %}` blocks included;
- `MAX_LENGTH` characters in one value a filter or `*`, `+`, `~` or a list literal builds,
  checked before it is built where the size is knowable (`replace`, `join`, `wordwrap`);
- `MAX_WORK` characters read and built by filters and operators in total (slow pure-Python
  filters weigh more), so a loop cannot repeat costly work ten thousand times;
- numbers: `*` may not build an integer past `MAX_INT_BITS`; `%` formatting of text is refused
  (a width such as `'%999999999d'` is an allocation of the template's choosing).

The hooks are Jinja's own extension points: `Environment.code_generator_class` (loops, output,
`~` and literals call the render's `BudgetContext`), `Environment.context_class` (one fresh
context per render holds the counters, so nothing is shared between renders or threads), and
filters wrapped with `pass_context`. The cost on an ordinary message is a method call per
value written and per filter (measured on the campaign test template: about 5 µs more per
message for subject, HTML and text, on a render path of about 200 µs).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any

from jinja2 import nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame, operators, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, markup_join, str_join

MAX_ITERATIONS = 10_000
MAX_OUTPUT = 2_000_000
MAX_LENGTH = 1_000_000
MAX_WORK = 20_000_000
MAX_INT_BITS = 4_000  # about 1,200 digits

# Pure-Python filters cost far more per character than C string operations (measured: wordwrap
# about 2 µs a character on long words, title and striptags about 0.3 µs, upper 1 ns).
FILTER_WEIGHTS = {"wordwrap": 200, "title": 50, "striptags": 50, "wordcount": 20, "urlencode": 20}
# One node of a loop's body, run once (a cheap statement takes about 30 times as long as
# copying a character).
NODE_WEIGHT = 30
# Comparisons and slices, per character read (`in` on a pathological text: about 3 ns).
READ_WEIGHT = 4


_SEQUENCES = (str, tuple, list)


class LimitExceeded(SecurityError):
    """A render went past one of this module's limits."""


def _number(n: int) -> str:
    return f"{n:,}"


def size(value: Any, limit: int = MAX_LENGTH) -> int:
    """About `len(str(value))`, counted only until it passes `limit`: a list may hold the same
    long string many times over, and nested lists multiply, so nothing is converted to find
    out."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple | dict):
        total = 2
        for item in value.items() if isinstance(value, dict) else value:
            total += size(item, limit - total) + 2
            if total > limit:
                break
        return total
    if isinstance(value, int):
        return value.bit_length() // 3 + 2
    return 32


def check_length(length: int, what: str) -> None:
    if length > MAX_LENGTH:
        raise LimitExceeded(f"{what} would be too long (over {_number(MAX_LENGTH)} characters)")


class BudgetContext(Context):
    """Jinja's render context, counting what the render has spent (fresh for every render)."""

    iterations = 0
    output = 0
    work = 0

    def budget_iterate(self, iterable: Any, body: int) -> Any:
        """A loop's iterable: its passes count against `MAX_ITERATIONS`, and each pass runs
        the loop's `body` nodes, which count against `MAX_WORK` (`NODE_WEIGHT` each)."""
        if isinstance(iterable, Sized):
            self._iterations(len(iterable), body)
            return iterable
        return self._counted(iterable, body)

    def _counted(self, iterable: Iterable[Any], body: int) -> Iterator[Any]:
        for item in iterable:
            self._iterations(1, body)
            yield item

    def _iterations(self, n: int, body: int) -> None:
        self.iterations += n
        if self.iterations > MAX_ITERATIONS:
            raise LimitExceeded(
                f"loops would run more than {_number(MAX_ITERATIONS)} times for one message"
            )
        self.budget_charge(n * body * NODE_WEIGHT)

    def budget_out(self, text: str) -> str:
        """A piece of output; all of them together count against `MAX_OUTPUT`."""
        self.output += len(text)
        if self.output > MAX_OUTPUT:
            raise LimitExceeded(
                f"the message would be longer than {_number(MAX_OUTPUT)} characters"
            )
        return text

    def budget_charge(self, units: int) -> None:
        """Work done by a filter or operator; the total counts against `MAX_WORK`."""
        self.work += units
        if self.work > MAX_WORK:
            raise LimitExceeded(
                f"the template would do more than {_number(MAX_WORK)} units of work "
                "for one message (loops, filters, comparisons and operators on long text)"
            )

    def budget_read(self, value: Any) -> Any:
        """A value read whole by a comparison or slice: its length is work (`READ_WEIGHT`)."""
        if isinstance(value, str | tuple | list):
            self.budget_charge(len(value) * READ_WEIGHT)
        return value

    def budget_join(self, values: tuple[Any, ...], markup: bool) -> str:
        """The `~` operator: checked before the joined text is built."""
        length = 0
        for value in values:
            length += size(value, MAX_LENGTH - length)
            check_length(length, "the result of ~")
        self.budget_charge(length)
        return markup_join(values) if markup else str_join(values)

    def budget_sized(self, literal: Any) -> Any:
        """A list, tuple or dict literal built from variables: `[s, s, s]` of a long `s`,
        nested a few times, would print as more text than any memory holds."""
        length = size(literal)
        check_length(length, "the list")
        self.budget_charge(length)
        return literal


class BudgetCodeGenerator(CodeGenerator):
    """Jinja's code generator, with loops, output, `~` and literals charged to the context."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The `iter` node of each for-loop (by id), and how many nodes one pass runs.
        self._loop_bodies: dict[int, int] = {}
        self._loop_depth = 0

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        body = node.body + ([node.test] if node.test is not None else [])
        self._loop_bodies[id(node.iter)] = sum(
            1 + sum(1 for _ in child.find_all(nodes.Node)) for child in body
        )
        self._loop_depth += 1
        try:
            super().visit_For(node, frame)
        finally:
            self._loop_depth -= 1

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        body = self._loop_bodies.get(id(node))
        if body is None:
            return super().visit(node, *args, **kwargs)
        self.write("context.budget_iterate(")
        super().visit(node, *args, **kwargs)
        self.write(f", {body})")
        return None

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        text = super()._output_const_repr(group)
        # Constant text outside loops is written once: no longer than the source.
        return f"context.budget_out({text})" if self._loop_depth else text

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        self.write("context.budget_out(")
        super()._output_child_pre(node, frame, finalize)

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        super()._output_child_post(node, frame, finalize)
        self.write(")")

    def visit_Operand(self, node: nodes.Operand, frame: Frame) -> None:
        # A comparison reads its operands: `in` on a long text can take milliseconds.
        if isinstance(node.expr, nodes.Const):
            return super().visit_Operand(node, frame)
        self.write(f" {operators[node.op]} context.budget_read(")
        self.visit(node.expr, frame)
        self.write(")")

    @optimizeconst
    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, nodes.Slice):
            return super().visit_Getitem(node, frame)
        self.write("context.budget_read(")  # a slice copies
        self.visit(node.node, frame)
        self.write(")[")
        self.visit(node.arg, frame)
        self.write("]")
        return None

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            markup = "context.eval_ctx.autoescape"
        else:
            markup = str(bool(frame.eval_ctx.autoescape))
        self.write("context.budget_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(f"), {markup})")

    def _sized(self, visit: Callable[[Any, Frame], None], node: Any, frame: Frame) -> None:
        if getattr(node, "ctx", "load") != "load":  # an assignment target
            return visit(node, frame)
        try:
            node.as_const(frame.eval_ctx)
        except nodes.Impossible:
            self.write("context.budget_sized(")
            visit(node, frame)
            self.write(")")
        else:  # constants only: as long as the source, which is bounded
            visit(node, frame)

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._sized(super().visit_List, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        self._sized(super().visit_Tuple, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._sized(super().visit_Dict, node, frame)


# --- operators ------------------------------------------------------------------------------

INTERCEPTED_BINOPS = frozenset({"*", "**", "%", "+"})


def binop(context: BudgetContext, op: str, left: Any, right: Any) -> Any:
    """`*`, `+`, `%` and `**`, each refused before it builds something too large."""
    if op == "**":
        raise SecurityError("the ** operator is not allowed")
    if op == "%":
        if isinstance(left, str):
            raise SecurityError("formatting text with % is not allowed; join text with ~")
        return operator.mod(left, right)
    if op == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | tuple | list) and isinstance(times, int):
                check_length(size(seq) * times, "the result of *")
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() + right.bit_length() > MAX_INT_BITS
        ):
            raise LimitExceeded("the result of * would be too large a number")
        result = operator.mul(left, right)
    else:
        if isinstance(left, str | tuple | list) and isinstance(right, str | tuple | list):
            check_length(size(left) + size(right), "the result of +")
        result = operator.add(left, right)
    if isinstance(result, str | tuple | list):
        context.budget_charge(len(result))
    return result


# --- filters --------------------------------------------------------------------------------


def _replace_length(s: Any, old: Any, new: Any, count: Any = None) -> int:
    s, old, new = str(s), str(old), str(new)
    n = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        n = min(n, count)
    return len(s) + n * max(len(new) - len(old), 0)


def _join_length(value: Any, d: Any = "", attribute: Any = None) -> int:
    if not isinstance(value, Sized):
        return 0
    n = len(value)
    length = max(n - 1, 0) * len(str(d))
    if isinstance(value, str):
        return length + n
    if attribute is None:
        for item in value:
            length += size(item, MAX_LENGTH - length)
            if length > MAX_LENGTH:
                break
    return length


def _wordwrap_length(s: Any, width: int = 79, *args: Any, **kwargs: Any) -> int:
    s = str(s)
    wrapstring = kwargs.get("wrapstring", args[1] if len(args) > 1 else None)
    wrap = 1 if wrapstring is None else len(str(wrapstring))
    lines = len(s) // max(int(width), 1) + s.count(" ") + s.count("-") + s.count("\n") + 1
    return len(s) + lines * wrap


# Filters whose result can be far longer than their input: its length, before it is built.
RESULT_LENGTH: dict[str, Callable[..., int]] = {
    "replace": _replace_length,
    "join": _join_length,
    "wordwrap": _wordwrap_length,
}


def bounded_filter(
    name: str, fn: Callable[..., Any], weight: int | None = None
) -> Callable[..., Any]:
    """Filter or test `fn`, charged to the render: the text and sequences it reads (times
    `weight`) and its result count against `MAX_WORK`, and its result against `MAX_LENGTH`
    (checked before it is built where `RESULT_LENGTH` knows how)."""
    passes = getattr(fn, "jinja_pass_arg", None)
    first = passes.name if passes is not None else None  # what Jinja passes `fn` first
    per_character = FILTER_WEIGHTS.get(name, 1) if weight is None else weight
    result_length = RESULT_LENGTH.get(name)
    what = f"the result of the '{name}' filter"

    def bounded(context: BudgetContext, value: Any, *args: Any, **kwargs: Any) -> Any:
        if result_length is not None:
            try:
                length = result_length(value, *args, **kwargs)
            except (TypeError, ValueError, ArithmeticError):  # bad arguments: the filter says
                length = 0
            check_length(length, what)
        read = len(value) if isinstance(value, _SEQUENCES) else 0
        for arg in args:
            if isinstance(arg, _SEQUENCES):
                read += len(arg)
        for arg in kwargs.values():
            if isinstance(arg, _SEQUENCES):
                read += len(arg)
        if read:
            context.budget_charge(read * per_character)
        if first is None:
            result = fn(value, *args, **kwargs)
        elif first == "eval_context":
            result = fn(context.eval_ctx, value, *args, **kwargs)
        elif first == "environment":
            result = fn(context.environment, value, *args, **kwargs)
        else:
            result = fn(context, value, *args, **kwargs)
        if isinstance(result, str):
            check_length(len(result), what)
            context.work += len(result)  # checked by the next charge: one result is bounded
        return result

    functools.update_wrapper(bounded, fn)
    return pass_context(bounded)  # after update_wrapper, which copies fn's own mark
