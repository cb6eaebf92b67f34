"""XLSForm `relevant` expressions (the subset docs/codebook.md allows), evaluated on whole columns.

Skip logic decides whether an empty answer is "skipped by logic" or "left blank", and whether a given
answer contradicts the questionnaire's flow. A small recursive-descent parser keeps this safe (no `eval`
of text from a workbook) and vectorised (one boolean Series per expression).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

_TOKEN = re.compile(r"""\s*(?:
    (?P<ref>\$\{[A-Za-z_][A-Za-z0-9_]*\}) |
    (?P<num>-?\d+(?:\.\d+)?) |
    (?P<str>'[^']*'|"[^"]*") |
    (?P<op><=|>=|!=|=|<|>) |
    (?P<punct>[(),]) |
    (?P<word>[A-Za-z_][A-Za-z0-9_-]*)
)""", re.VERBOSE)


class RelevanceError(ValueError):
    pass


@dataclass
class _Tok:
    kind: str
    text: str


def _tokenize(expr: str) -> list[_Tok]:
    pos, out = 0, []
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise RelevanceError(f"cannot read {expr[pos:]!r} in relevant expression {expr!r}")
        kind = m.lastgroup
        out.append(_Tok(kind, m.group(kind)))
        pos = m.end()
    return out


Frame = pd.DataFrame
Pred = Callable[[Frame], pd.Series]


class _Parser:
    def __init__(self, expr: str):
        self.expr = expr
        self.toks = _tokenize(expr)
        self.i = 0
        self.refs: set[str] = set()

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, text: str | None = None, kind: str | None = None) -> _Tok:
        tok = self.peek()
        if tok is None or (text is not None and tok.text != text) or (kind is not None and tok.kind != kind):
            want = text or kind
            raise RelevanceError(f"expected {want!r} in relevant expression {self.expr!r}")
        self.i += 1
        return tok

    def parse(self) -> Pred:
        pred = self.or_()
        if self.peek() is not None:
            raise RelevanceError(f"unexpected {self.peek().text!r} in relevant expression {self.expr!r}")
        return pred

    def or_(self) -> Pred:
        left = self.and_()
        while (t := self.peek()) and t.kind == "word" and t.text == "or":
            self.take()
            right = self.and_()
            left = (lambda a, b: lambda df: a(df) | b(df))(left, right)
        return left

    def and_(self) -> Pred:
        left = self.atom()
        while (t := self.peek()) and t.kind == "word" and t.text == "and":
            self.take()
            right = self.atom()
            left = (lambda a, b: lambda df: a(df) & b(df))(left, right)
        return left

    def atom(self) -> Pred:
        tok = self.peek()
        if tok is None:
            raise RelevanceError(f"relevant expression {self.expr!r} ends too early")
        if tok.text == "(":
            self.take("(")
            inner = self.or_()
            self.take(")")
            return inner
        if tok.kind == "word" and tok.text == "not":
            self.take()
            self.take("(")
            inner = self.or_()
            self.take(")")
            return lambda df: ~inner(df)
        if tok.kind == "word" and tok.text == "selected":
            self.take()
            self.take("(")
            name = self.ref()
            self.take(",")
            code = self.literal()
            self.take(")")
            column = f"{name}__{int(code)}"
            return lambda df: _col(df, column).eq(1).fillna(False).astype(bool)
        name = self.ref()
        op = self.take(kind="op").text
        value = self.literal()
        return _compare(name, op, value)

    def ref(self) -> str:
        tok = self.take(kind="ref")
        name = tok.text[2:-1]
        self.refs.add(name)
        return name

    def literal(self) -> float | str:
        tok = self.peek()
        if tok is None or tok.kind not in ("num", "str"):
            raise RelevanceError(f"expected a number or quoted value in relevant expression {self.expr!r}")
        self.take()
        text = tok.text.strip("'\"") if tok.kind == "str" else tok.text
        try:
            return float(text)
        except ValueError:
            return text


def _col(df: Frame, name: str) -> pd.Series:
    if name not in df.columns:
        return pd.Series(pd.NA, index=df.index, dtype="Float64")
    return df[name]


def _compare(name: str, op: str, value) -> Pred:
    def pred(df: Frame) -> pd.Series:
        col = _col(df, name)
        if isinstance(value, float):
            col = pd.to_numeric(col, errors="coerce")
        ops = {"=": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
               ">": np.greater, ">=": np.greater_equal}
        result = ops[op](col, value)
        return pd.Series(result, index=df.index).fillna(False).astype(bool)
    return pred


@dataclass(frozen=True)
class Relevance:
    expr: str
    refs: frozenset[str]
    _pred: Pred

    def applies(self, df: Frame) -> pd.Series:
        """True where the question was shown (an empty answer there is 'left blank', not 'skipped')."""
        return self._pred(df)

    def __reduce__(self):
        """Pickled as its expression (the parsed predicate is closures): codebooks can cross to the run's
        helper process instead of being read from disk again."""
        return parse_relevance, (self.expr,)


def parse_relevance(expr: str) -> Relevance:
    parser = _Parser(expr)
    pred = parser.parse()
    return Relevance(expr=expr, refs=frozenset(parser.refs), _pred=pred)
