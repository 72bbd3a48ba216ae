"""A history checker for produce/consume runs with faults: given what producers were told
(acknowledged records with their offsets) and what a consumer read back, it reports lost
writes, duplicate offsets, inconsistent offsets and non-monotonic reads."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class History:
    # (partition, offset) -> value, as acknowledged to the producer
    acked: dict[tuple[int, int], bytes] = field(default_factory=dict)
    # values the producer was told failed (may or may not be in the log: never acked)
    failed: list[bytes] = field(default_factory=list)
    # (partition, offset, value) in the order a consumer read them
    read: list[tuple[int, int, bytes]] = field(default_factory=list)

    def ack(self, partition: int, offset: int, value: bytes) -> None:
        key = (partition, offset)
        if key in self.acked and self.acked[key] != value:
            raise AssertionError(f"two records acknowledged at {key}: {self.acked[key]!r} and {value!r}")
        self.acked[key] = value

    def problems(self) -> list[str]:
        out: list[str] = []
        at: dict[tuple[int, int], bytes] = {}
        last: dict[int, int] = {}
        for p, o, v in self.read:
            if p in last and o <= last[p]:
                out.append(f"non-monotonic read in partition {p}: offset {o} after {last[p]}")
            last[p] = o
            if (p, o) in at and at[(p, o)] != v:
                out.append(f"duplicate offset {p}/{o}: {at[(p, o)]!r} and {v!r}")
            at[(p, o)] = v
        for (p, o), v in self.acked.items():
            got = at.get((p, o))
            if got is None:
                out.append(f"lost write: {v!r} acknowledged at {p}/{o}, not read back")
            elif got != v:
                out.append(f"inconsistent offset {p}/{o}: acknowledged {v!r}, read {got!r}")
        # Offsets of a partition are contiguous from its first offset read.
        by_p: dict[int, list[int]] = {}
        for p, o, _ in self.read:
            by_p.setdefault(p, []).append(o)
        for p, offs in by_p.items():
            offs = sorted(set(offs))
            if offs and offs[-1] - offs[0] + 1 != len(offs):
                out.append(f"gap in partition {p}: {len(offs)} offsets between {offs[0]} and {offs[-1]}")
        return out

    def duplicated_values(self) -> int:
        """Values read more than once: legal without idempotence when a producer retried a
        request whose first attempt had been committed (outcome unknown to it)."""
        seen: dict[bytes, int] = {}
        for _, _, v in self.read:
            seen[v] = seen.get(v, 0) + 1
        return sum(1 for n in seen.values() if n > 1)

    def check(self) -> None:
        problems = self.problems()
        assert not problems, f"{len(problems)} problems, first: {problems[:10]}"
