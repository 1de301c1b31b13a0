"""Topic patterns, one connection's subscriptions, and the hub's index of them.

Patterns are dotted lower-case segments where a whole segment may be ``*``,
matching exactly one segment. They are compiled once, when subscribed. For
fan-out, ``TopicIndex`` keeps one set of connections per distinct pattern:
an alert costs a hash lookup for its exact topic plus a segment comparison
per distinct wildcard pattern, however many connections subscribed to them.
"""

from collections.abc import Hashable, Iterable


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
    """The topic patterns of one connection, compiled once, in subscription order.

    Fan-out does not go through here but through the hub's ``TopicIndex``;
    this answers the connection's own questions (its replies, its replays).
    """

    __slots__ = ("_patterns",)

    def __init__(self):
        self._patterns: dict[str, CompiledPattern] = {}

    def add(self, patterns: Iterable[str]) -> list[str]:
        """Subscribe to ``patterns``; returns those that were not subscribed yet."""
        added = []
        for pattern in patterns:
            if pattern not in self._patterns:
                self._patterns[pattern] = compile_topic_pattern(pattern)
                added.append(pattern)
        return added

    def remove(self, patterns: Iterable[str]) -> list[str]:
        """Unsubscribe from ``patterns``; returns those that were subscribed."""
        return [pattern for pattern in patterns if self._patterns.pop(pattern, None) is not None]

    def topics(self) -> list[str]:
        """All patterns, in the order they were first subscribed."""
        return list(self._patterns)

    def __len__(self) -> int:
        return len(self._patterns)

    def __contains__(self, pattern: str) -> bool:
        return pattern in self._patterns

    def matches(self, topic: str, segments: tuple[str, ...]) -> bool:
        """Whether any pattern matches ``topic`` (given also split into ``segments``)."""
        return any(pattern_matches(compiled, segments) for compiled in self._patterns.values())


NOBODY: frozenset = frozenset()


class TopicIndex:
    """Which members (connections) subscribed to which pattern."""

    __slots__ = ("_exact", "_wildcards")

    def __init__(self):
        self._exact: dict[str, set] = {}
        self._wildcards: dict[str, tuple[CompiledPattern, set]] = {}

    def add(self, pattern: str, member: Hashable) -> None:
        compiled = compile_topic_pattern(pattern)
        if None in compiled:
            self._wildcards.setdefault(pattern, (compiled, set()))[1].add(member)
        else:
            self._exact.setdefault(pattern, set()).add(member)

    def discard(self, pattern: str, member: Hashable) -> None:
        if pattern in self._exact:
            members = self._exact[pattern]
            members.discard(member)
            if not members:
                del self._exact[pattern]
        elif pattern in self._wildcards:
            members = self._wildcards[pattern][1]
            members.discard(member)
            if not members:
                del self._wildcards[pattern]

    def __len__(self) -> int:
        """Distinct patterns anyone subscribed to (a pattern nobody holds is gone)."""
        return len(self._exact) + len(self._wildcards)

    def interested(self, topic: str, segments: tuple[str, ...]) -> set | frozenset:
        """Members with a pattern matching ``topic``. Read it, do not change it:
        it may be the index's own set."""
        found = []
        exact = self._exact.get(topic)
        if exact:
            found.append(exact)
        for compiled, members in self._wildcards.values():
            if pattern_matches(compiled, segments):
                found.append(members)
        if not found:
            return NOBODY
        return found[0] if len(found) == 1 else set().union(*found)
