"""Ad hoc SQL: validated by sqlglot against the catalog, then run by an engine that
enforces the same rules itself (the parser is the first filter, the engine the last word).

- :mod:`catalog.queries.policy` — what may run: functions per engine, schemas per role.
- :mod:`catalog.queries.validate` — pure: SQL text in, the SQL that will run out (or
  :class:`~catalog.queries.errors.QueryRejected` saying why not).
- :mod:`catalog.queries.execute` — runs a validated query on a locked-down connection.
"""

import sys

from headwater.native import use_current_code

# The validator's hot modules run compiled when `make install` built them from the
# sources now here (headwater/native.py); from their .py files otherwise.
COMPILED = use_current_code(sys.modules[__name__])
