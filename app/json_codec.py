"""JSON on the request path and in capture: orjson first, the standard library for what orjson refuses.

Why orjson: parsing the body, rendering the answer and encoding every capture record run once per
request on two shared cores, and orjson does each several times faster than ``json``. Why the fallback:
orjson reads only UTF-8 without a BOM and writes only 64-bit integers, while clients may send UTF-16 or
a BOM (RFC 8259 section 8.1 tolerates both on input) and the standard library's errors name the
offending token (``NaN``), so the slow path keeps those behaviours exactly.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class InvalidJSONError(ValueError):
    """The body is not JSON; the message says where and, for ``NaN``/``Infinity``, what to send instead."""


def _reject_constant(name: str) -> Any:
    raise InvalidJSONError(f"{name} is not valid JSON; send null for a missing value")


# Built once: ``json.loads``/``json.dumps`` with options construct a new decoder/encoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODE_COMPACT = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def loads(body: bytes | str) -> Any:
    """Parse a request body; raises :class:`InvalidJSONError` with a message fit for the client."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass  # not UTF-8, a BOM, NaN, or simply broken: the standard library decides and explains
    try:
        # What json.loads does with bytes (UTF-8/16/32 detection, BOM), without building a decoder per call.
        text = body if isinstance(body, str) else body.decode(json.detect_encoding(body), "surrogatepass")
        return _DECODER.decode(text)
    except InvalidJSONError:
        raise
    except (ValueError, RecursionError) as exc:
        raise InvalidJSONError(f"body is not valid JSON: {exc}") from None


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; integers beyond 64 bits (possible from the fallback parser) go the slow way."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return _ENCODE_COMPACT(value).encode()


def dumps_text(value: Any) -> str:
    """:func:`dumps` as ``str``, for database drivers that bind JSON columns as text."""
    return dumps(value).decode()
