"""Export headers ↔ codebook questions.

Platforms write question headers as `5、题干`, `5. 题干`, `第5题(选项)`, with full/half-width punctuation mixed,
trailing type tags (`(多选题 *必答)`) and, across questionnaire versions, renumbered or reordered questions.
`match_headers` ties every export column to what it holds (docs/architecture.md, /work/shared/research/
export-formats.md): the number and the normalised text must agree; when the number disagrees the text decides
(difflib similarity with a high threshold). Columns that match nothing are reported, not fatal; a required
question without a column is an InputError.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from pipelines.codebook import Codebook, Question
from pipelines.errors import InputError

MULTI_SEP = "┋"
OTHER_OPEN, OTHER_CLOSE = "〖", "〗"
RANK_SEP = "→"
MATRIX_SEP = "—"

_PUNCT = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "〔": "[", "〕": "]",
                        "\u200b": None, "\u200c": None, "\u200d": None, "\ufeff": None, "\u00ad": None})
_WS = re.compile(r"\s+")
_TYPE_TAG = re.compile(
    r"\s*(?:[(\[【]\s*[^()\[\]【】]*?(?:单选|多选|排序|填空|矩阵|量表|必答|评分|下拉|比重|滑动|判断|NPS|文件)"
    r"[^()\[\]【】]*[)\]】]|\*\s*必答)\s*$")
_QNUM = re.compile(r"^(?:第\s*(\d{1,4})\s*题\s*[、.:]?|[QqＱ]?(\d{1,4})\s*(?:[、]|\.(?!\d)|(?=\()))\s*")


def normalise_header(text: object) -> str:
    """NFKC, stripped, whitespace collapsed, `“”` → `"`, trailing type tags (`(多选题 *必答)`) dropped."""
    return _normalise_header("" if text is None else str(text))


# Header and option texts repeat across files, questions and every (header, option) comparison: these
# pure functions of a str are memoised (bounded) instead of re-running NFKC and the regexes each time.
@lru_cache(maxsize=1 << 16)
def _normalise_header(s: str) -> str:
    for _ in range(8):  # a fixpoint, so normalise_header(normalise_header(x)) == normalise_header(x)
        new = unicodedata.normalize("NFKC", s).translate(_PUNCT)
        new = _WS.sub(" ", new).strip()
        while True:
            stripped = _TYPE_TAG.sub("", new).strip()
            if stripped == new:
                break
            new = stripped
        if new == s:
            break
        s = new
    return s


def text_key(text: object) -> str:
    """Comparison key: the normalised header without any spaces, case-folded."""
    return _text_key("" if text is None else str(text))


@lru_cache(maxsize=1 << 16)
def _text_key(s: str) -> str:
    return _normalise_header(s).replace(" ", "").casefold()


def option_key(text: object) -> str:
    """Option-text comparison key: NFKC, `“”` → `"`, no whitespace, case-folded (no tag stripping)."""
    return _option_key("" if text is None else str(text))


@lru_cache(maxsize=1 << 16)
def _option_key(s: str) -> str:
    return _WS.sub("", unicodedata.normalize("NFKC", s).translate(_PUNCT)).casefold()


def split_qnum(header: object) -> tuple[int | None, str]:
    """`5、题干` → (5, '题干'); `第6题(运动)` and `6(运动)` → (6, '(运动)'); unnumbered → (None, text)."""
    text = normalise_header(header)
    m = _QNUM.match(text)
    if not m:
        return None, text
    number = int(m.group(1) or m.group(2))
    return number, text[m.end():].strip()


def split_multi(text: str) -> list[tuple[str, str | None]]:
    """`A┋其他〖x┋y〗` → [('A', None), ('其他', 'x┋y')]: splits on ┋ outside 〖…〗."""
    out: list[tuple[str, str | None]] = []
    if text is None or text == "":
        return out
    depth, start, i = 0, 0, 0
    pieces = []
    for i, ch in enumerate(text):
        if ch == OTHER_OPEN:
            depth += 1
        elif ch == OTHER_CLOSE and depth:
            depth -= 1
        elif ch == MULTI_SEP and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    for piece in pieces:
        out.append(split_other(piece))
    return out


def split_other(piece: str) -> tuple[str, str | None]:
    """`其他〖写的内容〗` → ('其他', '写的内容'); a plain option text → (text, None)."""
    j = piece.find(OTHER_OPEN)
    if j >= 0 and piece.endswith(OTHER_CLOSE):
        return piece[:j], piece[j + 1:-1]
    return piece, None


def join_multi(options: Iterable[tuple[str, str | None]]) -> str:
    return MULTI_SEP.join(o if other is None else f"{o}{OTHER_OPEN}{other}{OTHER_CLOSE}" for o, other in options)


# ------------------------------------------------------------------------------------------ matching

META = {"序号": "platform_id", "编号": "platform_id", "提交答卷时间": "submitted_at", "提交时间": "submitted_at",
        "所用时间": "duration", "答题时长": "duration", "来源": "source", "来源详情": "source_detail",
        "来自ip": "ip", "ip": "ip", "总分": "total_score", "用户id": "user_id", "来源渠道": "source",
        "开始答题时间": "started_at", "结束答题时间": "submitted_at"}

#: what a column holds
VALUE, OPTION, ITEM, ROW, META_PART, UNMATCHED = "value", "option", "item", "row", "meta", "unmatched"


@dataclass(frozen=True)
class ColumnMatch:
    """One export column: `kind` is value (one answer), option (a select_multiple 0/1 column, `code`),
    item (a rank item's position, `code`), row (a matrix row), meta (`meta` names it) or unmatched."""

    index: int
    header: str
    kind: str
    question: Question | None = None
    code: int | None = None
    meta: str | None = None


SIMILAR_SAME_NUMBER = 0.8
SIMILAR_ANY_NUMBER = 0.9


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


class _Targets:
    """The codebook's column texts: key → [(question, kind)], for whole-column answers."""

    def __init__(self, codebook: Codebook):
        self.book = codebook
        self.by_key: dict[str, list[tuple[Question, str]]] = {}
        self.stems: list[tuple[str, dict[str, Question]]] = []
        for m in codebook.matrices.values():
            rows = {text_key(codebook[r].label_zh): codebook[r] for r in m.rows}
            self.stems.append((text_key(m.label_zh), rows))
        for q in codebook.questions:
            if q.matrix is not None:
                stem = codebook.matrices[q.matrix].label_zh
                keys = {text_key(q.label_zh), text_key(f"{stem}{MATRIX_SEP}{q.label_zh}"),
                        text_key(f"{stem}{q.label_zh}")}
                for k in keys:
                    self.by_key.setdefault(k, []).append((q, ROW))
            else:
                self.by_key.setdefault(text_key(q.label_zh), []).append((q, VALUE))

    def whole(self, qnum: int | None, rest: str, matrix: str | None) -> tuple[Question, str] | None:
        key = text_key(rest)
        numbered = [q for q in self.book.qnums.get(qnum, ())] if qnum is not None else []
        exact = self.by_key.get(key, [])
        # 1. number and text agree (a matrix row: the row text, or stem—row)
        both = [t for t in exact if t[0] in numbered]
        if both:
            return both[0]
        # 1b. `题干——行`, `题干:行`, `题干-行`: any separator between a matrix stem and its row
        for stem, rows in self.stems:
            if stem and key.startswith(stem):
                row = rows.get(key[len(stem):].lstrip("—-_:~|·.、 "))
                if row is not None and (not numbered or row in numbered):
                    return row, ROW
        # 2. unnumbered matrix rows right after their matrix
        if matrix is not None:
            same = [t for t in exact if t[0].matrix == matrix]
            if same:
                return same[0]
        # 3. the text alone (renumbered questions), when it is unambiguous
        if len(exact) == 1:
            return exact[0]
        if exact and numbered:
            return None
        # 4. near text under the same number, then anywhere
        if key and numbered:
            cands = [(q, ROW if q.matrix else VALUE, k) for k, ts in self.by_key.items() for q, _ in ts
                     if q in numbered]
            best = max(cands, key=lambda c: _ratio(key, c[2]), default=None)
            if best is not None and _ratio(key, best[2]) >= SIMILAR_SAME_NUMBER:
                return best[0], best[1]
            # same number, one text contains the other (`孩子的年龄` for `孩子的年龄(周岁)`)
            inside = {(c[0].name, c[1]): c for c in cands
                      if min(len(key), len(c[2])) >= 4 and (key in c[2] or c[2] in key)}
            if len(inside) == 1:
                q, kind, _ = next(iter(inside.values()))
                return q, kind
        if key:
            close = difflib.get_close_matches(key, list(self.by_key), n=2, cutoff=SIMILAR_ANY_NUMBER)
            if close and len(self.by_key[close[0]]) == 1:
                if len(close) == 1 or _ratio(key, close[0]) > _ratio(key, close[1]):
                    return self.by_key[close[0]][0]
        return None


def _option_suffix(rest: str, q: Question) -> int | None:
    """The choice code when `rest` is `(选项)` or `题干(选项)` for one of q's options."""
    key = text_key(rest)
    if not key.endswith(")"):
        return None
    stem = text_key(q.label_zh)
    for c in q.choices:
        opt = "(" + text_key(c.label_zh) + ")"
        if key == opt or (key.endswith(opt) and _ratio(key[: -len(opt)], stem) >= SIMILAR_SAME_NUMBER):
            return c.code
    return None


def _option_column(qnum: int | None, rest: str, book: Codebook) -> tuple[Question, int] | None:
    multi = [q for q in book.questions if q.type in ("select_multiple", "rank")]
    numbered = [q for q in multi if qnum is not None and q.qnum == qnum]
    for q in numbered:
        code = _option_suffix(rest, q)
        if code is not None:
            return q, code
    if not text_key(rest).startswith("("):  # `题干(选项)` identifies its question by text
        hits = [(q, c) for q in multi if (c := _option_suffix(rest, q)) is not None and q not in numbered]
        if len(hits) == 1:
            return hits[0]
    return None


def match_headers(headers: list[str], codebook: Codebook, path: str | Path | None = None,
                  required: bool = True) -> list[ColumnMatch]:
    """One ColumnMatch per header, in column order (headers may repeat, so this is a list, not a dict).

    Raises InputError (naming `path` and the question, `缺少第N题`) when a required question has no column.
    """
    targets = _Targets(codebook)
    out: list[ColumnMatch] = []
    taken: set[tuple[str, int | None]] = set()
    pending_options: dict[int, list[tuple[int, str]]] = {}  # renumbered `N(选项)` columns, by N
    matrix: str | None = None
    for i, header in enumerate(headers):
        header = "" if header is None else str(header)
        norm = normalise_header(header)
        meta = META.get(norm.replace(" ", "").casefold())
        if meta is not None:
            out.append(ColumnMatch(i, header, META_PART, meta=meta))
            continue
        qnum, rest = split_qnum(norm)
        found: ColumnMatch | None = None
        opt = _option_column(qnum, rest, codebook)
        if opt is not None:
            kind = OPTION if opt[0].type == "select_multiple" else ITEM
            found = ColumnMatch(i, header, kind, opt[0], opt[1])
        else:
            whole = targets.whole(qnum, rest, matrix if qnum is None else None)
            if whole is not None:
                found = ColumnMatch(i, header, whole[1], whole[0])
        if found is not None and (found.question.name, found.code) in taken:
            found = None
        if found is None:
            if qnum is not None and text_key(rest).startswith("("):
                pending_options.setdefault(qnum, []).append((i, rest))
            out.append(ColumnMatch(i, header, UNMATCHED))
            continue
        taken.add((found.question.name, found.code))
        matrix = found.question.matrix
        out.append(found)
    _match_renumbered_options(out, pending_options, codebook, taken)
    if required:
        check_required(out, codebook, path)
    return out


def _match_renumbered_options(out, pending, codebook, taken) -> None:
    """`N(选项)` columns whose N changed: the question whose option set covers the group's options."""
    for _qnum, cols in pending.items():
        best, best_hits = None, 0
        for q in codebook.questions:
            if q.type not in ("select_multiple", "rank") or any((q.name, c) in taken for c in q.codes):
                continue
            hits = sum(_option_suffix(rest, q) is not None for _, rest in cols)
            if hits > best_hits:
                best, best_hits = q, hits
        if best is None or best_hits < max(1, len(cols) // 2):
            continue
        kind = OPTION if best.type == "select_multiple" else ITEM
        for i, rest in cols:
            code = _option_suffix(rest, best)
            if code is not None and (best.name, code) not in taken:
                taken.add((best.name, code))
                out[i] = ColumnMatch(i, out[i].header, kind, best, code)


def check_required(matches: list[ColumnMatch], codebook: Codebook, path) -> None:
    present = {m.question.name for m in matches if m.question is not None}
    for q in codebook.questions:
        if q.required and q.name not in present:
            num = f"第{q.qnum}题" if q.qnum is not None else "题目"
            what = f"缺少{num} “{q.label_zh}” (required question '{q.name}' has no column)"
            matched = sum(p.name in present for p in codebook.questions)
            if matched * 2 < len(codebook.questions):  # most questions absent: a download of another questionnaire
                title = codebook.title or codebook.instrument
                raise InputError(path, f"{what}; only {matched} of {len(codebook.questions)} questions of "
                                       f"{title} ({codebook.instrument}) match its columns: it looks like the "
                                       f"download of another questionnaire",
                                 "move it to the folder of its own questionnaire, data_raw/<wave>/<instrument>/")
            raise InputError(path, what,
                             "download the export of this questionnaire again, or fix the codebook's qnum/label")


def absent_questions(matches: list[ColumnMatch], codebook: Codebook) -> list[str]:
    present = {m.question.name for m in matches if m.question is not None}
    return [q.name for q in codebook.questions if q.name not in present]
