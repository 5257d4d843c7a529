"""Making request-supplied text safe to write into a log line."""

from __future__ import annotations

MAX_LOGGED_CHARS = 200


def loggable(value: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """value as one log-safe line: controls, separators and backslashes escaped.

    Paths, names, token subjects and headers come from callers; written raw, a
    newline in them forges a log line and a NUL ends up in the file. Escaping
    them the way repr does keeps every record one honest line, cut at limit.
    """
    text = value if isinstance(value, str) else str(value)
    cut = len(text) > limit
    escaped = "".join(
        char if char.isprintable() and char != "\\" else _escape(char)
        for char in text[:limit]
    )
    return f"{escaped}...(+{len(text) - limit} chars)" if cut else escaped


def _escape(char: str) -> str:
    if char == "\\":
        return "\\\\"
    return (
        repr(char)[1:-1] if char.isascii() else char.encode("unicode_escape").decode()
    )
