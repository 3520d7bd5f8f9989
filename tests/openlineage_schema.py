"""The OpenLineage rules Headwater's events are checked against, as a JSON Schema.

Why hand-written: the official ``spec/OpenLineage.json`` and its facet schemas are
not available offline here (no internet; openlineage-python and the other packages
ship generated classes, not the JSON files; npm has none), and Headwater adds no
dependency to fetch them. So this schema states, in our own words, the rules of the
OpenLineage 2-0-2 ``RunEvent`` and of the facets Headwater emits, as the published
spec and its facet documents give them:

- a RunEvent needs ``eventTime`` (RFC 3339 date-time), ``producer`` and
  ``schemaURL`` (URIs), ``run`` and ``job``; ``eventType`` is one of START,
  RUNNING, COMPLETE, ABORT, FAIL, OTHER; ``inputs`` / ``outputs`` are datasets;
- a run needs ``runId`` (a UUID); a job and a dataset need ``namespace`` and
  ``name``;
- every facet, wherever it sits, carries ``_producer`` and ``_schemaURL`` (URIs);
- ``schema`` (SchemaDatasetFacet 1-1-1): ``fields``, each with a ``name``, and an
  optional ``type``, ``description`` and nested ``fields``;
- ``columnLineage`` (ColumnLineageDatasetFacet 1-2-0): ``fields`` maps each output
  column to its ``inputFields`` (``namespace``, ``name``, ``field`` required, with
  ``transformations``: ``type`` DIRECT or INDIRECT, a ``subtype`` among those the
  spec documents, ``description``, ``masking``); ``dataset`` lists the input fields
  that shape the whole dataset;
- ``parent`` (ParentRunFacet): ``run.runId`` (UUID) and ``job`` (namespace, name);
  ``errorMessage`` (ErrorMessageRunFacet): ``message`` and ``programmingLanguage``;
  ``jobType`` (JobTypeJobFacet): ``processingType`` and ``integration``.

Where the spec documents a closed list only in prose (transformation types and
subtypes), the schema holds us to that list.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

BASE_FACET: dict[str, Any] = {
    "type": "object",
    "required": ["_producer", "_schemaURL"],
    "properties": {
        "_producer": {"type": "string", "format": "uri"},
        "_schemaURL": {"type": "string", "format": "uri"},
        "_deleted": {"type": "boolean"},
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://headwater.local/tests/openlineage-run-event.json",
    "$ref": "#/$defs/RunEvent",
    "$defs": {
        "BaseFacet": BASE_FACET,
        "RunEvent": {
            "type": "object",
            "required": ["eventTime", "producer", "schemaURL", "run", "job"],
            "properties": {
                "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
                "eventTime": {"type": "string", "format": "date-time"},
                "producer": {"type": "string", "format": "uri"},
                "schemaURL": {"type": "string", "format": "uri"},
                "run": {"$ref": "#/$defs/Run"},
                "job": {"$ref": "#/$defs/Job"},
                "inputs": {"type": "array", "items": {"$ref": "#/$defs/InputDataset"}},
                "outputs": {"type": "array", "items": {"$ref": "#/$defs/OutputDataset"}},
            },
        },
        "Run": {
            "type": "object",
            "required": ["runId"],
            "properties": {
                "runId": {"type": "string", "format": "uuid"},
                "facets": {
                    "type": "object",
                    "properties": {
                        "parent": {"$ref": "#/$defs/ParentRunFacet"},
                        "errorMessage": {"$ref": "#/$defs/ErrorMessageRunFacet"},
                    },
                    "additionalProperties": {"$ref": "#/$defs/BaseFacet"},
                },
            },
        },
        "Job": {
            "type": "object",
            "required": ["namespace", "name"],
            "properties": {
                "namespace": {"type": "string", "minLength": 1},
                "name": {"type": "string", "minLength": 1},
                "facets": {
                    "type": "object",
                    "properties": {"jobType": {"$ref": "#/$defs/JobTypeJobFacet"}},
                    "additionalProperties": {"$ref": "#/$defs/BaseFacet"},
                },
            },
        },
        "Dataset": {
            "type": "object",
            "required": ["namespace", "name"],
            "properties": {
                "namespace": {"type": "string", "minLength": 1},
                "name": {"type": "string", "minLength": 1},
                "facets": {
                    "type": "object",
                    "properties": {
                        "schema": {"$ref": "#/$defs/SchemaDatasetFacet"},
                        "columnLineage": {"$ref": "#/$defs/ColumnLineageDatasetFacet"},
                    },
                    "additionalProperties": {"$ref": "#/$defs/BaseFacet"},
                },
            },
        },
        "InputDataset": {
            "allOf": [{"$ref": "#/$defs/Dataset"}],
            "properties": {
                "inputFacets": {
                    "type": "object",
                    "additionalProperties": {"$ref": "#/$defs/BaseFacet"},
                }
            },
        },
        "OutputDataset": {
            "allOf": [{"$ref": "#/$defs/Dataset"}],
            "properties": {
                "outputFacets": {
                    "type": "object",
                    "additionalProperties": {"$ref": "#/$defs/BaseFacet"},
                }
            },
        },
        "SchemaField": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "type": {"type": "string"},
                "description": {"type": "string"},
                "fields": {"type": "array", "items": {"$ref": "#/$defs/SchemaField"}},
            },
        },
        "SchemaDatasetFacet": {
            "allOf": [{"$ref": "#/$defs/BaseFacet"}],
            "required": ["fields"],
            "properties": {
                "fields": {"type": "array", "items": {"$ref": "#/$defs/SchemaField"}},
            },
        },
        "Transformation": {
            "type": "object",
            "required": ["type"],
            "properties": {
                "type": {"enum": ["DIRECT", "INDIRECT"]},
                "subtype": {
                    "enum": [
                        "IDENTITY",
                        "TRANSFORMATION",
                        "AGGREGATION",
                        "JOIN",
                        "GROUP_BY",
                        "FILTER",
                        "SORT",
                        "WINDOW",
                        "CONDITIONAL",
                    ]
                },
                "description": {"type": "string"},
                "masking": {"type": "boolean"},
            },
        },
        "InputField": {
            "type": "object",
            "required": ["namespace", "name", "field"],
            "properties": {
                "namespace": {"type": "string", "minLength": 1},
                "name": {"type": "string", "minLength": 1},
                "field": {"type": "string", "minLength": 1},
                "transformations": {
                    "type": "array",
                    "items": {"$ref": "#/$defs/Transformation"},
                },
            },
        },
        "ColumnLineageDatasetFacet": {
            "allOf": [{"$ref": "#/$defs/BaseFacet"}],
            "required": ["fields"],
            "properties": {
                "fields": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["inputFields"],
                        "properties": {
                            "inputFields": {
                                "type": "array",
                                "items": {"$ref": "#/$defs/InputField"},
                            }
                        },
                    },
                },
                "dataset": {"type": "array", "items": {"$ref": "#/$defs/InputField"}},
            },
        },
        "ParentRunFacet": {
            "allOf": [{"$ref": "#/$defs/BaseFacet"}],
            "required": ["run", "job"],
            "properties": {
                "run": {
                    "type": "object",
                    "required": ["runId"],
                    "properties": {"runId": {"type": "string", "format": "uuid"}},
                },
                "job": {
                    "type": "object",
                    "required": ["namespace", "name"],
                    "properties": {
                        "namespace": {"type": "string"},
                        "name": {"type": "string"},
                    },
                },
            },
        },
        "ErrorMessageRunFacet": {
            "allOf": [{"$ref": "#/$defs/BaseFacet"}],
            "required": ["message", "programmingLanguage"],
            "properties": {
                "message": {"type": "string"},
                "programmingLanguage": {"type": "string"},
                "stackTrace": {"type": "string"},
            },
        },
        "JobTypeJobFacet": {
            "allOf": [{"$ref": "#/$defs/BaseFacet"}],
            "required": ["processingType", "integration"],
            "properties": {
                "processingType": {"enum": ["BATCH", "STREAMING", "SERVICE"]},
                "integration": {"type": "string", "minLength": 1},
                "jobType": {"type": "string"},
            },
        },
    },
}

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")

# jsonschema checks "uuid" itself; "date-time" and "uri" need packages that are not
# installed, so they are checked here, strictly enough for our events.
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return True


@FORMATS.checks("uri")
def _uri(value: object) -> bool:
    return not isinstance(value, str) or _URI.match(value) is not None


Draft202012Validator.check_schema(SCHEMA)
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=FORMATS)


def errors(event: Any) -> list[str]:
    """Every rule ``event`` breaks, as ``path: message`` lines (empty when valid)."""
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(event)'}: {error.message}"
        for error in sorted(VALIDATOR.iter_errors(event), key=lambda e: list(e.absolute_path))
    ]


def assert_valid(event: Any) -> None:
    found = errors(event)
    assert not found, "\n".join(found)
