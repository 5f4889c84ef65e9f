"""The filter language of ``GET /v1/jobs?filter=``: a tokenizer and a recursive-descent
parser that turn a filter into a small tree (:data:`Node`). Nothing here knows SQL; the
tree is checked against the known fields and compiled to SQLAlchemy expressions by
:mod:`service.search.compile`. docs/search.md states the grammar (EBNF) and the meaning.

Errors are :class:`FilterSyntaxError`: the column (1-based) and what was found there,
e.g. ``at column 23: expected a value after '>', found 'and'``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "MAX_FILTER_LENGTH",
    "And",
    "Compare",
    "FilterSyntaxError",
    "In",
    "IsNull",
    "Node",
    "Not",
    "Or",
    "Value",
    "parse",
]

#: The longest filter accepted (characters), and the deepest nesting of parentheses and
#: ``not``: a bound on the work one request can ask for.
MAX_FILTER_LENGTH = 2000
MAX_DEPTH = 32
MAX_IN_VALUES = 100

Value = str | float | bool
CompareOp = Literal["=", "!=", "<", "<=", ">", ">=", "contains"]
KEYWORDS = frozenset({"and", "or", "not", "in", "contains", "is", "null", "true", "false"})


class FilterSyntaxError(ValueError):
    """A filter that does not parse; ``column`` is 1-based."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(f"at column {column}: {message}")
        self.column = column


@dataclass(frozen=True)
class Token:
    kind: Literal["field", "number", "string", "op", "keyword", "(", ")", ",", "end"]
    text: str  # as written (keywords lower-cased)
    column: int
    value: Value | None = None

    def shown(self) -> str:
        return "the end of the filter" if self.kind == "end" else repr(self.text)


# -- the tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    field: str
    op: CompareOp
    value: Value
    column: int  # where the field starts, for the checker's messages


@dataclass(frozen=True)
class In:
    field: str
    values: tuple[Value, ...]
    column: int


@dataclass(frozen=True)
class IsNull:
    field: str
    column: int


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]


Node = Compare | In | IsNull | Not | And | Or


# -- tokens -----------------------------------------------------------------------------

# A field is a dotted name; tag keys may hold '-' and '.', so both continue a name.
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_OPS = ("!=", "<=", ">=", "==", "=", "<", ">")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}


def _string(text: str, start: int) -> tuple[str, int]:
    """The string literal opening at ``start``: its value and the index after it. The
    quote is escaped by doubling it (``'it''s'``) or with a backslash (``'it\\'s'``)."""
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text) or text[i + 1] not in _ESCAPES:
                found = repr(text[i : i + 2])
                raise FilterSyntaxError(
                    i + 1, f"unknown escape {found} in a string; use \\\\, \\', \\\", \\n or \\t"
                )
            out.append(_ESCAPES[text[i + 1]])
            i += 2
        elif c == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                out.append(quote)
                i += 2
            else:
                return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise FilterSyntaxError(start + 1, f"the string opened here has no closing {quote}")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        c = text[i]
        col = i + 1
        if c.isspace():
            i += 1
        elif c in "(),":
            tokens.append(Token(c, c, col))  # type: ignore[arg-type]
            i += 1
        elif c in "'\"":
            value, i = _string(text, i)
            tokens.append(Token("string", text[col - 1 : i], col, value))
        elif (op := next((o for o in _OPS if text.startswith(o, i)), None)) is not None:
            tokens.append(Token("op", "=" if op == "==" else op, col))
            i += len(op)
        elif m := _NUMBER.match(text, i):
            number = float(m.group())
            if not math.isfinite(number):
                raise FilterSyntaxError(col, f"the number {m.group()} is out of range")
            tokens.append(Token("number", m.group(), col, number))
            i = m.end()
        elif m := _FIELD.match(text, i):
            word = m.group()
            if word.lower() in KEYWORDS:
                tokens.append(Token("keyword", word.lower(), col))
            else:
                tokens.append(Token("field", word, col))
            i = m.end()
        else:
            raise FilterSyntaxError(col, f"unexpected character {c!r}")
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


# -- the parser -------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    @property
    def here(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at(self, kind: str, text: str | None = None) -> bool:
        tok = self.here
        return tok.kind == kind and (text is None or tok.text == text)

    def fail(self, expected: str) -> FilterSyntaxError:
        return FilterSyntaxError(
            self.here.column, f"expected {expected}, found {self.here.shown()}"
        )

    def expect(self, kind: str, expected: str) -> Token:
        if not self.at(kind):
            raise self.fail(expected)
        return self.take()

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterSyntaxError(
                self.here.column, f"nested more than {MAX_DEPTH} deep (parentheses and not)"
            )

    # filter = or_expr, end
    def filter(self) -> Node:
        node = self.or_expr()
        if not self.at("end"):
            raise self.fail("'and', 'or' or the end of the filter")
        return node

    # or_expr = and_expr, { "or", and_expr }
    def or_expr(self) -> Node:
        parts = [self.and_expr()]
        while self.at("keyword", "or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    # and_expr = not_expr, { "and", not_expr }
    def and_expr(self) -> Node:
        parts = [self.not_expr()]
        while self.at("keyword", "and"):
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    # not_expr = "not", not_expr | primary
    def not_expr(self) -> Node:
        if self.at("keyword", "not"):
            self.take()
            self.nest()
            node = Not(self.not_expr())
            self.depth -= 1
            return node
        return self.primary()

    # primary = "(", or_expr, ")" | condition
    def primary(self) -> Node:
        if self.at("("):
            self.take()
            self.nest()
            node = self.or_expr()
            self.expect(")", "')' or 'and'/'or'")
            self.depth -= 1
            return node
        if not self.at("field"):
            raise self.fail("a field name (e.g. status, optimizer.lr, tags.stage) or '('")
        return self.condition(self.take())

    # condition = field, ( op, value | ["not"], "in", list | "contains", string
    #                     | "is", ["not"], "null" )
    def condition(self, field: Token) -> Node:
        name, col = field.text, field.column
        if self.at("op"):
            op = self.take().text
            value = self.value(f"after {op!r}")
            return Compare(name, op, value, col)  # type: ignore[arg-type]
        if self.at("keyword", "contains"):
            self.take()
            tok = self.here
            if tok.kind != "string":
                raise self.fail("a quoted string after 'contains'")
            self.take()
            assert isinstance(tok.value, str)
            return Compare(name, "contains", tok.value, col)
        if self.at("keyword", "is"):
            self.take()
            negated = self.at("keyword", "not")
            if negated:
                self.take()
            if not self.at("keyword", "null"):
                raise self.fail("'null' after 'is'" + (" not" if negated else ""))
            self.take()
            node: Node = IsNull(name, col)
            return Not(node) if negated else node
        negated = self.at("keyword", "not")
        if negated:
            self.take()
            if not self.at("keyword", "in"):
                raise self.fail("'in' after 'not'")
        if self.at("keyword", "in"):
            self.take()
            found = In(name, self.value_list(), col)
            return Not(found) if negated else found
        raise self.fail(
            f"an operator after {name!r}: =, !=, <, <=, >, >=, in, not in, contains, is null"
        )

    def value_list(self) -> tuple[Value, ...]:
        self.expect("(", "'(' to open the list of values")
        values = [self.value("in the list")]
        while self.at(","):
            self.take()
            values.append(self.value("after ','"))
        self.expect(")", "',' or ')'")
        if len(values) > MAX_IN_VALUES:
            raise FilterSyntaxError(self.tokens[self.i - 1].column, "at most 100 values in a list")
        return tuple(values)

    # value = number | string | "true" | "false"
    def value(self, where: str) -> Value:
        tok = self.here
        if tok.kind in ("number", "string"):
            self.take()
            assert tok.value is not None
            return tok.value
        if tok.kind == "keyword" and tok.text in ("true", "false"):
            self.take()
            return tok.text == "true"
        if tok.kind == "keyword" and tok.text == "null":
            raise FilterSyntaxError(
                tok.column, "null is not a value to compare with; write 'is null' or 'is not null'"
            )
        raise self.fail(f"a value {where} (a number, a quoted string, true or false)")


def parse(text: str) -> Node:
    """The tree of filter ``text``; :class:`FilterSyntaxError` when it does not parse."""
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterSyntaxError(
            MAX_FILTER_LENGTH + 1, f"a filter is at most {MAX_FILTER_LENGTH} characters"
        )
    return _Parser(tokenize(text)).filter()
