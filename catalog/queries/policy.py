"""What an ad hoc query may use: functions per engine and schemas per role.

Functions are named as sqlglot normalises them (``sql_name()`` of a known function,
the written name of one sqlglot does not know), so ``DATE_TRUNC``, ``date_trunc`` and
``"date_trunc"`` are one entry. Every call must be on the engine's list; on top of
that, any name written before ``(`` that reads files, URLs, the environment, server
settings, locks or sleeps is refused however it is spelled (see :data:`DENIED_NAME`).

When the validator runs a query as its own tokens (:mod:`catalog.queries.splice`), the
engine calls each function by the name as written, so that name must also be one of
the engine's own built-in functions (or grammar forms such as ``COALESCE``) listed in
:data:`CALLS_AS_WRITTEN`; any other call makes the validator write the SQL with
sqlglot, in the engine's own names.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection, Mapping
from typing import Literal

Engine = Literal["duckdb", "postgres"]
ROLES = ("viewer", "user", "admin")

# Calls common to both engines, as sqlglot names them.
_COMMON = """
abs age array array_agg array_to_string ascii avg bit_length cardinality case cast cbrt
ceil chr coalesce concat concat_ws corr count covar_pop cume_dist current_date
current_timestamp date date_bin dense_rank encode exists exp extract first_value floor
format generate_subscripts greatest group_concat hex if initcap json_array_length
json_extract json_extract_scalar lag last_value lead least left length ln log
logical_and logical_or lower max md5 min mode nth_value ntile nullif octet_length pad
percent_rank percentile_cont pi power rank regexp_replace regr_slope repeat replace
reverse right round row row_number sign split_part sqrt starts_with stddev stddev_pop
stddev_samp str_position str_to_time substring sum time_to_str timestamp_from_parts
timestamp_trunc timezone to_json translate trim trunc try_cast upper uuid variance
variance_pop now current_time currenttime currentdate currenttimestamp regexp_like
"""

_DUCKDB = """
any_value approx_distinct arg_max arg_min array_contains array_distinct array_size
array_sort century contains count_if date_add date_from_parts date_part date_sub datediff
day day_of_week day_of_year dayname dayofweek_iso ends_with epoch_us explode filter first
flatten from_json hash hour iff is_inf is_nan isoyear j_s_o_n_object jarowinkler_similarity
json_keys json_type json_valid last last_day levenshtein list_aggregate list_slice
map_keys median minute month monthname parse_json printf quarter rand regexp_extract
regexp_like second sha2 split struct time_from_parts time_to_unix to_base64 to_char
to_date transform typeof unicode unix_to_time week year yearweek list_value
list_contains list_filter list_sort list_distinct string_split epoch epoch_ms
make_date make_timestamp make_time strftime strptime time_bucket today to_timestamp
columns
"""

_POSTGRES = """
array_append array_concat array_contains_all array_position array_remove array_size
clock_timestamp covar_samp degrees every explode isfinite j_s_o_n_array_agg
j_s_o_n_b_contains_top_key j_s_o_n_b_object_agg j_s_o_n_object_agg json_build_object
json_typeof jsonb_agg jsonb_array_elements jsonb_array_length jsonb_build_object
jsonb_extract_path_text jsonb_extract_scalar jsonb_object_keys jsonb_typeof
justify_days localtimestamp make_date make_interval num_nonnulls num_nulls overlay
percentile_disc quote_ident quote_literal radians regexp_match regexp_matches
regexp_split_to_array str_to_date string_to_array to_jsonb to_number width_bucket
to_char to_date to_timestamp date_part
"""

ALLOWED_FUNCTIONS: Mapping[Engine, frozenset[str]] = {
    "duckdb": frozenset((_COMMON + _DUCKDB).split()),
    "postgres": frozenset((_COMMON + _POSTGRES).split()),
}

# Built-in functions of each engine (and its grammar forms written like calls) that a
# query may call by the name as written. A test checks each against the engine's own
# catalog (duckdb_functions(), pg_catalog.pg_proc).
_CALLS_COMMON = """
abs array_agg ascii avg bool_and bool_or ceil ceiling chr coalesce concat concat_ws corr
count covar_pop covar_samp cume_dist date_part date_trunc dense_rank exp first_value floor
greatest lag last_value lead least left length ln log lower lpad ltrim make_date max md5
min mod now nth_value ntile nullif percent_rank power rank regexp_replace regr_slope
repeat replace reverse right round row_number rpad rtrim sign split_part sqrt starts_with
stddev stddev_pop stddev_samp string_agg strpos substr substring sum to_timestamp
translate trunc upper var_pop var_samp variance
"""
_CALLS_DUCKDB = """
any_value arg_max arg_min approx_count_distinct array_length bit_length contains count_if
date_diff datediff day dayname dayofweek dayofyear epoch epoch_ms ends_with hash hour if
isinf isnan last_day len levenshtein list_aggregate list_contains list_distinct list_filter
list_slice list_sort list_transform list_value make_time make_timestamp median minute mode
month monthname octet_length percentile_cont percentile_disc printf quantile_cont
quantile_disc quarter regexp_extract regexp_matches second sha256 strftime string_split
strptime time_bucket today typeof unicode week year yearweek
"""
_CALLS_POSTGRES = """
age array_append array_cat array_length array_position array_remove array_to_string
btrim cardinality char_length clock_timestamp date_bin degrees json_agg json_build_object
json_typeof jsonb_agg jsonb_array_length jsonb_build_object jsonb_extract_path_text
jsonb_typeof justify_days make_interval mode num_nonnulls num_nulls octet_length
percentile_cont percentile_disc radians regexp_match regexp_split_to_array
string_to_array to_char to_date to_json to_jsonb to_number width_bucket
"""
CALLS_AS_WRITTEN: Mapping[Engine, frozenset[str]] = {
    "duckdb": frozenset((_CALLS_COMMON + _CALLS_DUCKDB).split()),
    "postgres": frozenset((_CALLS_COMMON + _CALLS_POSTGRES).split()),
}
# Of those, the grammar forms written like calls (never looked up as functions).
CALL_FORMS: Mapping[Engine, frozenset[str]] = {
    "duckdb": frozenset({"coalesce", "percentile_cont", "percentile_disc"}),
    "postgres": frozenset({"coalesce", "greatest", "least", "nullif"}),
}

# Names that read files, URLs or the environment, touch server settings, sessions,
# locks or time, or reach other databases — refused wherever they appear before "(",
# quoted, qualified or in any case.
DENIED_NAME = re.compile(
    r"""^(?:
        read_\w* | \w*_scan | \w*_scan_\w* | scan_\w* | glob | sniff_csv | parquet_\w*
      | iceberg_\w* | delta_\w* | query | query_table | getenv | current_setting
      | set_config | pg_\w* | lo_\w* | dblink\w* | txid_\w* | duckdb_\w* | pragma_\w*
      | load_extension | install | load | http_\w* | inet_\w* | sleep | which_secret
      | checkpoint | force_checkpoint | current_database | current_schemas? | version
      | has_\w*_privilege | to_regclass | currval | nextval | setval | lastval
    )$""",
    re.VERBOSE,
)


# Text that every name DENIED_NAME matches contains, grouped by first letter (which
# lets the regex engine skip ahead): a first look over the whole SQL, lower-cased. ASCII
# SQL with none of it, and no escape (\\ or U&), cannot write a denied name.
DENIED_TEXT = re.compile(
    r"c(?:urrent_database|heckpoint|urrent_s|urrval)|d(?:uckdb_|elta_|blink)|g(?:etenv|lob)"
    r"|h(?:ttp_|as_)|i(?:ceberg_|nstall|net_)|l(?:astval|oad|o_)|nextval"
    r"|p(?:arquet_|ragma_|g_)|query|read_|s(?:et_config|niff_csv|etval|leep|can)"
    r"|t(?:o_regclass|xid_)|version|which_secret"
)


def may_name_denied(sql: str) -> bool:
    """Whether ``sql`` might name a denied function (``False`` only when it cannot)."""
    if not sql.isascii() or "&" in sql or "\\" in sql:
        return True
    return DENIED_TEXT.search(sql.lower()) is not None


def is_denied(name: str) -> bool:
    """Whether ``name`` (as written, any case, without quotes) is a refused function."""
    return bool(DENIED_NAME.match(name.lower()))


def readable(schema: str, patterns: Collection[str], prefix: str) -> bool:
    """Whether ``schema`` (a warehouse schema) matches one of ``patterns``.

    A pattern names a schema without the configured prefix (``marts``, ``raw_*``);
    ``*`` matches every schema.
    """
    bare = schema[len(prefix) :] if prefix and schema.startswith(prefix) else None
    if prefix and bare is None:
        return False
    name = (bare if bare is not None else schema).lower()
    return any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in patterns)
