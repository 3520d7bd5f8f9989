"""The SQL that runs, written from the tokens sqlglot read instead of regenerated.

Regenerating a checked query with sqlglot costs more than parsing it. When every
token of the query is one that every engine reads the same way once written back in a
standard form — a plain word, a double-quoted name, a string without backslashes, a
decimal number, one of a few operators — the validator writes the query from its
tokens instead:

- each token as sqlglot read it: keywords and function names in upper case, names as
  written (PostgreSQL's unquoted names folded to lower case, as the engine folds them),
  strings and quoted names quoted again the standard way;
- one space between tokens, except beside punctuation that stands alone (``f(x)``,
  ``a.b``, ``x::int``, ``a, b``); comments are not tokens, so they never run;
- the catalog's qualified name in place of each table reference, and the row limit.

So the engine runs the statement sqlglot checked, token for token, and the text is
also the query's canonical form: whitespace, comments and the case of keywords do not
change it. Anything else (a dollar-quoted or escaped string, a parameter, an operator
outside the list, a function whose written name is not on the allow-list) gets
``None``, and the caller regenerates the SQL from the checked tree.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any, Final

from sqlglot import TokenType
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.dialects.postgres import Postgres
from sqlglot.parser import Parser

from catalog.queries.policy import Engine

_DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_OPERATORS = frozenset(("(", ")", ",", ".", "*", "+", "-", "/", "%", "=", "<>", "!=", "<"))
_OPERATORS |= {"<=", ">", ">=", "||", "::", "[", "]"}
# Words that stand before "(" without calling a function: clauses, which a space
# separates from the parenthesis, and calls spelled as syntax, which none does.
_CLAUSES = frozenset(
    re.split(
        r"\s*,\s*",
        """AS, IN, USING, OVER, EXISTS, FILTER, ON, AND, OR, NOT, SELECT, FROM, JOIN, WHERE,
        ALL, ANY, SOME, CASE, WHEN, THEN, ELSE, DISTINCT, UNION, UNION ALL, EXCEPT,
        INTERSECT, HAVING, QUALIFY, WITHIN, WITHIN GROUP, WINDOW, ROWS, RANGE, LIMIT,
        OFFSET, IS, BETWEEN, LIKE, ILIKE, INTERVAL, LATERAL, GROUP, GROUP BY, ORDER BY,
        PARTITION BY, VALUES, EXCLUDE, MATERIALIZED""".strip(),
    )
)
_SYNTAX: Mapping[Engine, frozenset[str]] = {
    "duckdb": _CLAUSES | {"CAST", "TRY_CAST", "EXTRACT"},
    "postgres": (_CLAUSES - {"EXCLUDE", "QUALIFY"}) | {"CAST", "EXTRACT"},
}
# Keywords written as read: each engine reads them as sqlglot does. sqlglot reads more
# than either engine (DIV, RLIKE, SEMI, CLUSTER BY, LATERAL VIEW …); any keyword not
# listed makes the caller write the SQL with sqlglot, in the engine's own syntax.
_KEYWORDS_BOTH = frozenset(
    TokenType[name]
    for name in re.findall(
        r"\S+",
        """ALIAS ALL AND ANY ARRAY ASC BETWEEN BIGINT BOOLEAN CASE CROSS CUBE
    CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP DATE DECIMAL DESC DISTINCT DOUBLE ELSE END
    ESCAPE EXCEPT EXISTS FALSE FILTER FIRST FLOAT FROM FULL GROUPING_SETS GROUP_BY HAVING
    ILIKE IN INNER INT INTERSECT INTERVAL IS JOIN JSON LEFT LIKE LIMIT NOT NULL OFFSET ON OR
    ORDER_BY OUTER OVER PARTITION_BY RECURSIVE REPLACE RIGHT ROLLUP ROWS SELECT SMALLINT
    SOME TEXT THEN TIME TIMESTAMPTZ TRUE UNION USING UUID VALUES WHEN WHERE WINDOW WITH
    FETCH NEXT ONLY""",
    )
)
_KEYWORDS: Mapping[Engine, frozenset[TokenType]] = {
    "duckdb": _KEYWORDS_BOTH
    | {TokenType.QUALIFY, TokenType.TIMESTAMPNTZ, TokenType.STRUCT, TokenType.PERCENT},
    "postgres": _KEYWORDS_BOTH
    | {TokenType.TIMESTAMP, TokenType.VARCHAR, TokenType.ROW, TokenType.LATERAL}
    | {TokenType.JSONB},
}
# Plain words (not names, not calls) written as read: window frames, NULLS LAST, AT
# TIME ZONE, and the parts of dates and intervals.
_WORDS_BOTH = frozenset(
    re.findall(
        r"\S+",
        """NULLS LAST UNBOUNDED PRECEDING FOLLOWING CURRENT WITHIN GROUP AT ZONE RANGE
    PRECISION YEAR YEARS MONTH MONTHS DAY DAYS HOUR HOURS MINUTE MINUTES SECOND SECONDS
    WEEK WEEKS QUARTER EPOCH DOW DOY ISODOW ISOYEAR DECADE CENTURY MILLENNIUM MILLISECOND
    MILLISECONDS MICROSECOND MICROSECONDS""",
    )
)
_PLAIN_WORDS: Mapping[Engine, frozenset[str]] = {
    "duckdb": _WORDS_BOTH | {"EXCLUDE", "SAMPLE"},
    "postgres": _WORDS_BOTH,
}

Edit = tuple[int, str]  # the last character it replaces, and the text put there


def render(
    tokens: list[Any],
    *,
    engine: Engine,
    identifiers: Collection[int],
    edits: Mapping[int, Edit],
    calls: Collection[str],
    suffix: str = "",
    wrap: bool = False,
) -> str | None:
    """The query written back from its ``tokens`` with ``edits`` applied, or ``None``.

    ``identifiers`` are the offsets where a name (not a keyword) starts; ``edits`` maps
    the offset of a token to replace, with the ones after it up to the edit's end;
    ``suffix`` goes at the end; ``wrap`` puts the query in ``SELECT * FROM (…) AS q``
    first. ``calls`` are the functions (lower case) the engine may call by the name as
    written: its own built-ins (see :data:`catalog.queries.policy.CALLS_AS_WRITTEN`).

    One loop with no call per token: this runs for every query seen for the first time.
    """
    out: list[str] = []
    fold = engine == "postgres"
    starts = sorted(edits)
    starts.append(-1)
    next_edit: int = starts[0]
    edit_index = 0
    glue, rules, words = _GLUE, _RULES, _WORDS
    syntax, keywords, plain_words = _SYNTAX[engine], _KEYWORDS[engine], _PLAIN_WORDS[engine]
    var, string, quoted_name, paren = (
        TokenType.VAR,
        TokenType.STRING,
        TokenType.IDENTIFIER,
        TokenType.L_PAREN,
    )
    after: int = _OPEN  # how the previous token binds the next one
    skip_to = -1  # the end of the edit being applied
    count = len(tokens)
    for index, token in enumerate(tokens):
        start: int = token.start
        if start <= skip_to:
            continue
        if start == next_edit:
            skip_to, text = edits[start]
            edit_index += 1
            next_edit = starts[edit_index]
            before, then = _SPACE, _NAME
        else:
            kind = token.token_type
            text = token.text
            found = glue.get(kind)
            if found is None:  # any other kind of token: a prefixed string, a parameter …
                return None
            before, then = found
            if before == _WORD:  # a name or a keyword
                word = words.get(text)
                if word is None:
                    word = _word(text)
                    if word is None:
                        return None
                upper, lower, clause = word
                before = _SPACE
                if index + 1 < count and tokens[index + 1].token_type is paren:
                    # A call, a grammar form, or a type and its size. The engine calls a
                    # function by the name as written, so that must be one of its own
                    # built-ins: sqlglot's name for it passed the allow-list, not this.
                    if lower not in calls and upper not in syntax:
                        if kind not in keywords or kind not in Parser.TYPE_TOKENS:
                            return None
                        if index == 0 or tokens[index - 1].token_type not in _CAST_MARKS:
                            return None
                    text = upper
                elif start in identifiers:  # a name: its case may name a result column
                    if fold:
                        text = lower
                elif kind is var:
                    if upper not in plain_words:
                        return None
                    text = upper
                elif kind in keywords:
                    text = upper
                    if fold and kind is TokenType.FROM and (after == _OPEN or not out):
                        return None  # (FROM t SELECT …): DuckDB's, not PostgreSQL's
                else:
                    return None
                if clause:
                    then = _PLAIN
            elif kind is string:  # no backslash: no engine setting reads an escape in it
                if "\\" in text:
                    return None
                text = "'" + text.replace("'", "''") + "'"
            elif kind is quoted_name:
                if index + 1 < count and tokens[index + 1].token_type is paren:
                    return None  # "lower"(x): a function looked up by that exact name
                text = '"' + text.replace('"', '""') + '"'
            elif before == _NUMBER_FIRST:
                if not _DECIMAL.match(text):
                    return None
            elif before == _END:  # the statement's closing semicolon
                continue
            elif text not in _OPERATORS:
                return None
        if out:
            spaced = rules[after + before]
            if spaced == _IF_GAP:  # as the user wrote it
                previous = tokens[index - 1]
                if fold and previous.token_type is TokenType.R_BRACKET:
                    return None  # ARRAY[1, 2][1]: PostgreSQL needs (ARRAY[1, 2])[1]
                spaced = start > previous.end + 1
            elif spaced == _UNSURE:
                return None
            if spaced:
                out.append(" ")
        out.append(text)
        after = then
    body = "".join(out)
    if wrap:
        body = f"SELECT * FROM ({body}) AS q"  # noqa: S608 - the checked query, spliced
    return body + suffix


def _word(text: str) -> tuple[str, str, bool] | None:
    """A plain word (or words, for a keyword like GROUP BY) in upper and lower case, and
    whether it is a clause keyword; ``None`` when it is anything but ASCII letters,
    digits and underscores."""
    if not text.replace(" ", "_").isidentifier() or not text.isascii():
        return None
    upper = text.upper()
    word = (upper, text.lower(), upper in _CLAUSES)
    if len(_WORDS) >= 8192:
        _WORDS.clear()
    _WORDS[text] = word
    return word


_WORDS: Final[dict[str, tuple[str, str, bool]]] = {}  # plain words seen, as _word gives them

# How a token binds its neighbours: the spacing before it (``_SPACE`` …), and what it
# asks of the token after it (``_PLAIN`` …); ``_RULES[after + before]`` is the space.
# (Final: the compiled build, headwater/native.py, inlines them.)
_SPACE: Final = 0
_TIGHT: Final = 1
_DOT: Final = 2
_PAREN: Final = 3
_BRACKET: Final = 4
_NUMBER_FIRST: Final = 5
_STRING_FIRST: Final = 6
_END: Final = 7
_WORD: Final = 8
_PLAIN: Final = 0
_OPEN: Final = 16
_AFTER_DOT: Final = 32
_NAME: Final = 48
_NUMBER: Final = 64
_AFTER_STRING: Final = 80
_IF_GAP: Final = 2  # as the user wrote it: "[" after a space is not a subscript
_UNSURE: Final = 3  # two tokens whose reading depends on what is between them: regenerate
_RULES: Final = [1] * 96
for _after in (_PLAIN, _OPEN, _AFTER_DOT, _NAME, _NUMBER, _AFTER_STRING):
    _RULES[_after + _TIGHT] = 0  # a, b   f(x)   x::int
    _RULES[_after + _DOT] = 0  # a.b
    _RULES[_after + _BRACKET] = _IF_GAP
for _before in range(9):
    _RULES[_OPEN + _before] = 0  # f(x   a[1   x::int
    _RULES[_AFTER_DOT + _before] = 0  # a.b
# ".5" is read as "." and "5", and 'pa'<newline>'id' as one string 'paid'.
_RULES[_NUMBER + _DOT] = _RULES[_AFTER_DOT + _NUMBER_FIRST] = _UNSURE
_RULES[_AFTER_STRING + _STRING_FIRST] = _UNSURE
_RULES[_NAME + _PAREN] = 0  # count(*)   NUMERIC(12, 2)
# Words: names, and the keywords of both engines' dialects (never a string of another
# kind, such as E'…', N'…' or $$…$$, whose text may look like a word).
_WORD_KINDS = {TokenType.VAR} | {
    kind
    for tokenizer in (DuckDB.Tokenizer, Postgres.Tokenizer)
    for text, kind in tokenizer.KEYWORDS.items()
    if text.replace(" ", "_").isidentifier()
}
_GLUE: Final[dict[TokenType, tuple[int, int]]] = {
    **dict.fromkeys(_WORD_KINDS, (_WORD, _NAME)),
    TokenType.STRING: (_STRING_FIRST, _AFTER_STRING),
    TokenType.IDENTIFIER: (_SPACE, _NAME),
    TokenType.NUMBER: (_NUMBER_FIRST, _NUMBER),
    TokenType.SEMICOLON: (_END, _PLAIN),
    TokenType.COMMA: (_TIGHT, _PLAIN),
    TokenType.R_PAREN: (_TIGHT, _PLAIN),
    TokenType.R_BRACKET: (_TIGHT, _PLAIN),
    TokenType.DCOLON: (_TIGHT, _OPEN),
    TokenType.DOT: (_DOT, _AFTER_DOT),
    TokenType.L_PAREN: (_PAREN, _OPEN),
    TokenType.L_BRACKET: (_BRACKET, _OPEN),
    **dict.fromkeys(
        (
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
        ),
        (_SPACE, _PLAIN),
    ),
}
_CAST_MARKS = (TokenType.ALIAS, TokenType.DCOLON)


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
