"""Topic patterns and one connection's subscriptions.

Patterns are dotted lower-case segments where a whole segment may be ``*``,
matching exactly one segment. They are compiled once, when subscribed, and
exact topics go to a set, so matching an alert costs a hash lookup plus a
segment comparison per wildcard pattern.
"""

from collections.abc import Iterable


WILDCARD = "*"

# A compiled pattern: one entry per dotted segment, None where the pattern has "*".
CompiledPattern = tuple[str | None, ...]


def compile_topic_pattern(pattern: str) -> CompiledPattern:
    """Split a (validated) pattern into segments, ``*`` becoming ``None``."""
    return tuple(None if part == WILDCARD else part for part in pattern.split("."))


def pattern_matches(compiled: CompiledPattern, segments: tuple[str, ...]) -> bool:
    """Whether a compiled pattern matches a topic already split into segments.

    ``*`` matches exactly one segment: ``workflow.*`` matches ``workflow.publish``
    but neither ``workflow`` nor ``workflow.publish.extra``.
    """
    if len(compiled) != len(segments):
        return False
    for expected, actual in zip(compiled, segments):
        if expected is not None and expected != actual:
            return False
    return True


def topic_matches(pattern: str, topic: str) -> bool:
    """Convenience form of ``pattern_matches`` for one pattern and one topic."""
    return pattern_matches(compile_topic_pattern(pattern), tuple(topic.split(".")))


class Subscriptions:
    """The topic patterns of one connection, compiled once.

    Exact topics go to a set (one hash lookup per broadcast); only patterns
    with a wildcard are matched segment by segment.
    """

    __slots__ = ("_order", "_exact", "_wildcards")

    def __init__(self):
        self._order: dict[str, None] = {}  # insertion-ordered set, for stable replies
        self._exact: set[str] = set()
        self._wildcards: dict[str, CompiledPattern] = {}

    def add(self, patterns: Iterable[str]) -> None:
        """Subscribe to ``patterns``; already present ones are kept as they are."""
        for pattern in patterns:
            if pattern in self._order:
                continue
            self._order[pattern] = None
            compiled = compile_topic_pattern(pattern)
            if None in compiled:
                self._wildcards[pattern] = compiled
            else:
                self._exact.add(pattern)

    def remove(self, patterns: Iterable[str]) -> None:
        """Unsubscribe from ``patterns``; unknown ones are ignored."""
        for pattern in patterns:
            self._order.pop(pattern, None)
            self._exact.discard(pattern)
            self._wildcards.pop(pattern, None)

    def topics(self) -> list[str]:
        """All patterns, in the order they were first subscribed."""
        return list(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, pattern: str) -> bool:
        return pattern in self._order

    def matches(self, topic: str, segments: tuple[str, ...]) -> bool:
        """Whether any pattern matches ``topic`` (given also split into ``segments``)."""
        if topic in self._exact:
            return True
        for compiled in self._wildcards.values():
            if pattern_matches(compiled, segments):
                return True
        return False
