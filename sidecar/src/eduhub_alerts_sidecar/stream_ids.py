"""Redis stream ids (``<milliseconds>-<sequence>``) as comparable positions.

Ids are compared as pairs of integers, never as strings: ``"10-0"`` comes
after ``"9-0"``. Both parts are unsigned 64-bit integers, as in Redis.
"""

import re


StreamPosition = tuple[int, int]

MAX_PART = 2**64 - 1
ORIGIN: StreamPosition = (0, 0)  # before every entry: "since" 0-0 replays the whole stream
_STREAM_ID_RE = re.compile(r"^(\d{1,20})(?:-(\d{1,20}))?$")


def parse_stream_id(value: str) -> StreamPosition:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``; ``"1700000000000"`` means ``-0``.

    Raises ``ValueError`` for anything else, including parts beyond 64 bits,
    which Redis would refuse.
    """
    match = _STREAM_ID_RE.match(value)
    if match is None:
        raise ValueError("not a stream id such as '1700000000000-0'")
    ms, seq = int(match.group(1)), int(match.group(2) or 0)
    if ms > MAX_PART or seq > MAX_PART:
        raise ValueError("stream id parts must fit in 64 bits")
    return ms, seq


def format_stream_id(position: StreamPosition) -> str:
    """The Redis text form of a position."""
    return f"{position[0]}-{position[1]}"


def successor(position: StreamPosition) -> StreamPosition | None:
    """The smallest position after ``position``; None after the very last one."""
    ms, seq = position
    if seq < MAX_PART:
        return ms, seq + 1
    if ms < MAX_PART:
        return ms + 1, 0
    return None
