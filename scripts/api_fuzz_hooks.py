"""schemathesis hooks of scripts/api-fuzz (loaded through scripts/api-fuzz.toml).

They supply what the OpenAPI document cannot state, and nothing else:

- NDJSON bodies of POST /hits are text whose lines are hits. JSON Schema can only call
  them a string, so generated strings would be meaningless (every one that is not valid
  NDJSON gets 400). The fuzzing uses the JSON bodies; crates/api's tests cover NDJSON.
- A hit's `timestamp` must lie between 2000-01-01T00:00:00Z and 24 h after the request
  arrives. The document says so in words, but a bound relative to "now" is no JSON
  Schema, so a generated timestamp that fits the schema is moved into that window.
  Timestamps that do not fit the schema are left alone (negative cases stay negative).
  An integral float (`55889.0`) fits JSON Schema's `integer` but the service wants an
  integer literal, so it is sent as one.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

import schemathesis
import schemathesis.generation.jsonschema.strategy as _strategies
from hypothesis.internal.reflection import get_pretty_function_description

MIN_EVENT_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
# `format: int64`: integers outside it break the schema, so they stay as they are.
INT64 = range(-(2**63), 2**63)
MAX_AHEAD_MS = 24 * 3600 * 1000
NDJSON = ("application/x-ndjson", "application/ndjson")
RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def _describe_lambdas_now(module) -> None:
    """Python 3.11.7 only: hypothesis describes the lambdas of a strategy by parsing their
    module's source, and `ast.parse` deep in a recursive draw can fail with "AST
    constructor recursion depth mismatch" (a CPython bug, fixed in later releases).
    Describing one lambda of the module here, at a shallow stack, parses it once and
    caches the result for every later description."""
    for value in vars(module).values():
        candidates = value.values() if isinstance(value, dict) else [value]
        for candidate in candidates:
            if callable(candidate) and getattr(candidate, "__name__", "") == "<lambda>":
                get_pretty_function_description(candidate)
                return


_describe_lambdas_now(_strategies)


@schemathesis.hook
def before_load_schema(context, raw_schema):
    content = raw_schema["paths"]["/hits"]["post"]["requestBody"]["content"]
    for media_type in NDJSON:
        content.pop(media_type, None)


def _epoch_ms(text: str) -> int | None:
    match = RFC3339.match(text)
    if not match:
        return None
    try:
        parsed = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(parsed.timestamp() * 1000)


def _in_window(ms: int, now_ms: int) -> int:
    """`ms` if the service takes it, else a time within the last day derived from it."""
    if MIN_EVENT_MS <= ms <= now_ms + MAX_AHEAD_MS:
        return ms
    return now_ms - 1000 - abs(ms) % (24 * 3600 * 1000)


def _fix_hit(hit, now_ms: int):
    if not isinstance(hit, dict) or "timestamp" not in hit:
        return hit
    value = hit["timestamp"]
    if isinstance(value, bool):
        return hit
    if isinstance(value, float) and value.is_integer() and int(value) in INT64:
        # JSON Schema counts 55889.0 as an integer; the service takes integer literals only.
        value = int(value)
    if isinstance(value, int) and value in INT64:
        hit["timestamp"] = _in_window(value, now_ms)
    elif isinstance(value, str):
        ms = _epoch_ms(value)
        if ms is not None and _in_window(ms, now_ms) != ms:
            moved = datetime.fromtimestamp(_in_window(ms, now_ms) / 1000, tz=timezone.utc)
            hit["timestamp"] = moved.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return hit


@schemathesis.hook
def before_call(context, case, kwargs):
    # Every phase sends through here; schemathesis revalidates the case after the edit.
    operation = context.operation
    if operation is None or operation.method.upper() != "POST" or operation.path != "/hits":
        return
    now_ms = int(time.time() * 1000)
    body = case.body
    if isinstance(body, list):
        case.body = [_fix_hit(hit, now_ms) for hit in body]
    elif isinstance(body, dict):
        case.body = _fix_hit(body, now_ms)
