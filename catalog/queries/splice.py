"""The SQL that runs, written from the user's own tokens instead of regenerated.

Regenerating a checked query with sqlglot costs more than parsing it. When every
lexeme of the query is one whose reading no engine can dispute — a plain word, a
double-quoted name, a standard string with no backslash, a decimal number, one of a
few operators — the validator writes the query back from its tokens instead:

- each token as written (keywords and function names upper-cased, PostgreSQL's
  unquoted names folded to lower case, as the engine folds them);
- one space wherever the user had whitespace or a comment (comments never run);
- the catalog's qualified name in place of each table reference, and the row limit.

The result is the statement sqlglot checked, token for token, and it is also the
query's canonical form: whitespace, comments and the case of keywords do not change
it. Anything else (a dollar-quoted or escaped string, a parameter, an operator outside
the list, a function whose written name is not on the allow-list) gets ``None``, and
the caller regenerates the SQL from the checked tree as before.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlglot import TokenType
from sqlglot.parser import Parser

from catalog.queries.policy import Engine

_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_OPERATORS = frozenset(("(", ")", ",", ".", "*", "+", "-", "/", "%", "=", "<>", "!=", "<"))
_OPERATORS |= {"<=", ">", ">=", "||", "::", "[", "]"}
# Words that stand before "(" without calling a function: clauses, which a space
# separates from the parenthesis, and calls spelled as syntax, which none does.
_CLAUSES_BEFORE_PAREN = frozenset(
    re.split(
        r"\s*,\s*",
        """AS, IN, USING, OVER, EXISTS, FILTER, ON, AND, OR, NOT, SELECT, FROM, JOIN, WHERE,
        ALL, ANY, SOME, CASE, WHEN, THEN, ELSE, DISTINCT, UNION, UNION ALL, EXCEPT,
        INTERSECT, HAVING, QUALIFY, WITHIN, WITHIN GROUP, WINDOW, ROWS, RANGE, LIMIT,
        OFFSET, IS, BETWEEN, LIKE, ILIKE, INTERVAL, LATERAL, GROUP, GROUP BY, ORDER BY,
        PARTITION BY, VALUES, EXCLUDE, MATERIALIZED""".strip(),
    )
)
_SYNTAX_BEFORE_PAREN = _CLAUSES_BEFORE_PAREN | {"CAST", "TRY_CAST", "EXTRACT"}

Edit = tuple[int, str]  # the last character it replaces, and the text put there


def render(
    sql: str,
    tokens: Sequence[Any],
    *,
    engine: Engine,
    identifiers: Collection[int],
    edits: Mapping[int, Edit],
    allowed: Collection[str],
    suffix: str = "",
    wrap: bool = False,
) -> str | None:
    """``sql`` written back from its ``tokens`` with ``edits`` applied, or ``None``.

    ``identifiers`` are the offsets where a name (not a keyword) starts; ``edits`` maps
    the offset of a token to replace, with the ones after it up to the edit's end;
    ``suffix`` goes at the end; ``wrap`` puts the query in ``SELECT * FROM (…) AS q``
    first. ``allowed`` are the function names (lower case) that may run as written.

    One loop, no call per token: this runs for every query seen for the first time.
    """
    out: list[str] = []
    previous = ""  # the last text written
    after_number = after_name = False
    last = -2  # where the previous token ended in ``sql``
    skip_to = -1  # the end of the edit being applied
    count = len(tokens)
    for index, token in enumerate(tokens):
        start = token.start
        if start <= skip_to:
            continue
        number = name = False
        edit = edits.get(start)
        if edit is not None:
            skip_to, text = edit
            end = skip_to
        else:
            end = token.end
            raw = sql[start : end + 1]
            kind = token.token_type
            lexeme = _LEXEMES.get(kind, _WORDS)
            if lexeme == _PUNCTUATION:
                if raw not in _OPERATORS:
                    return None
                text = raw
            elif lexeme == _STRINGS:  # no backslash: no engine reads it as an escape
                if "\\" in raw or raw != "'" + token.text.replace("'", "''") + "'":
                    return None
                text = raw
            elif lexeme == _QUOTED_NAMES:
                if raw != '"' + token.text.replace('"', '""') + '"':
                    return None
                text = raw
            elif lexeme == _NUMBERS:
                if not _NUMBER.match(raw):
                    return None
                text, number = raw, True
            elif lexeme == _END:  # the statement's closing semicolon
                last = end
                continue
            else:
                call = index + 1 < count and tokens[index + 1].token_type is TokenType.L_PAREN
                word = _word(raw, token, kind, start in identifiers, call, engine, allowed)
                if word is None:
                    return None
                if call and word not in _SYNTAX_BEFORE_PAREN and word.lower() not in allowed:
                    # Not a call after all: a type with its size (``AS NUMERIC(12, 2)``)
                    if kind not in Parser.TYPE_TOKENS or index == 0:
                        return None
                    if tokens[index - 1].token_type not in (TokenType.ALIAS, TokenType.DCOLON):
                        return None
                text, name = word, word.upper() not in _CLAUSES_BEFORE_PAREN
        if out:
            # One space between tokens, except beside punctuation that stands alone in
            # every engine's reading, where SQL style leaves none (f(x), a.b, x::int,
            # a, b). A space is never dropped between two operators: - -1 stays - - 1.
            if text == "." or previous == ".":
                spaced = after_number or number  # 1 . 5 is not 1.5
            elif text in _TIGHT_BEFORE or previous in _TIGHT_AFTER:
                spaced = False
            elif text == "(":
                spaced = not after_name
            elif text == "[":
                spaced = start > last + 1
            else:
                spaced = True
            if spaced:
                out.append(" ")
        out.append(text)
        previous, after_number, after_name, last = text, number, name, end
    body = "".join(out)
    if wrap:
        body = f"SELECT * FROM ({body}) AS q"  # noqa: S608 - the checked query, spliced
    return body + suffix


def _word(
    raw: str,
    token: Any,
    kind: TokenType,
    identifier: bool,
    call: bool,
    engine: Engine,
    allowed: Collection[str],
) -> str | None:
    """A name or keyword as it is written back; ``None`` when it is not plain."""
    if identifier or kind is TokenType.VAR:
        if not (raw.isidentifier() and raw.isascii()):
            return None
        if call and not identifier:
            # A function: the engine runs the name as written, so that name must be on
            # the allow-list too, not only the one sqlglot read it as.
            upper = raw.upper()
            return upper if raw.lower() in allowed or upper in _SYNTAX_BEFORE_PAREN else None
        return raw.lower() if engine == "postgres" else raw
    written = raw.upper()  # a keyword, maybe of several words ("GROUP BY")
    if written != token.text.upper():
        written = " ".join(written.split())
        if written != token.text.upper():
            return None
    if not written.replace(" ", "_").isidentifier() or not written.isascii():
        return None
    return written


_STRINGS, _QUOTED_NAMES, _NUMBERS, _PUNCTUATION, _END, _WORDS = range(6)
_LEXEMES = {
    TokenType.STRING: _STRINGS,
    TokenType.IDENTIFIER: _QUOTED_NAMES,
    TokenType.NUMBER: _NUMBERS,
    TokenType.SEMICOLON: _END,
    **dict.fromkeys(
        (
            TokenType.L_PAREN,
            TokenType.R_PAREN,
            TokenType.COMMA,
            TokenType.DOT,
            TokenType.STAR,
            TokenType.PLUS,
            TokenType.DASH,
            TokenType.SLASH,
            TokenType.MOD,
            TokenType.EQ,
            TokenType.NEQ,
            TokenType.LT,
            TokenType.LTE,
            TokenType.GT,
            TokenType.GTE,
            TokenType.DPIPE,
            TokenType.DCOLON,
            TokenType.L_BRACKET,
            TokenType.R_BRACKET,
        ),
        _PUNCTUATION,
    ),
}
_TIGHT_BEFORE = frozenset((",", ")", "]", ".", "::"))
_TIGHT_AFTER = frozenset(("(", "[", ".", "::"))


def quoted(name: str, reserved: Collection[str]) -> str:
    """A name as SQL text: bare when it is a plain lower-case word, else double-quoted."""
    if (
        name.isidentifier()
        and name.isascii()
        and name == name.lower()
        and name.upper() not in reserved
    ):
        return name
    return '"' + name.replace('"', '""') + '"'
