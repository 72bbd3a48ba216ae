"""The history checker: the single oracle of the fault tests.

Every test that writes through faults records in a `History` what its producer sent and was
told about each write and what a consumer read back afterwards, and judges the log by
`History.check()` alone: broker kills, SIGSTOP, failovers, hand-overs, etcd restarts and
compaction (test_cluster.py), a full etcd (test_metadata.py), lost commit replies
(test_idempotence.py), an object-store outage and kill -9 on S3 (test_s3.py). They produce
through `clients.Load` (or record the same way) and read back with `clients.read_all`.

What a passing `check()` guarantees:

- Acknowledged writes are durable and in place: each is read back at the (partition,
  offset) it was acknowledged with, with its value, and no other value is read there.
- Failed writes (the producer reported an error: the outcome is indeterminate) may be
  absent or present. If present, a failed write is in the partition it was sent to, never at
  an offset an acknowledged write holds (so it cannot displace or reorder the acknowledged
  ones), and with `idempotent=True` it appears at most once and in send order.
- Nothing else is read: every value read was sent by the producer.
- Reads of a partition are a log: offsets increase in read order, hold one value each, and
  are contiguous from the start of the log (`log_start`, 0 for the new topics the fault
  tests write to).
- With `idempotent=True` (a producer that never writes a value twice and keeps per-partition
  order), every value is read at most once, and the values read in each partition are in
  the order they were sent. Without it, a producer that retries a request whose first
  attempt was committed writes that value twice and may reorder on retry: such duplicates
  are legal, counted by `duplicated_values()`, and send order is not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class History:
    # whether the producer was idempotent: no duplicates, per-partition send order kept
    idempotent: bool = False
    # the offset every partition's log begins at (fault tests write to new topics); None: unknown
    log_start: int | None = 0
    # partition -> values in the order they were handed to the producer
    sent: dict[int, list[bytes]] = field(default_factory=dict)
    # (partition, offset) -> value, as acknowledged to the producer
    acked: dict[tuple[int, int], bytes] = field(default_factory=dict)
    # (partition, value) the producer was told failed (may or may not be in the log)
    failed: list[tuple[int, bytes]] = field(default_factory=list)
    # (partition, offset, value) in the order a consumer read them
    read: list[tuple[int, int, bytes]] = field(default_factory=list)

    def send(self, partition: int, value: bytes) -> None:
        self.sent.setdefault(partition, []).append(value)

    def ack(self, partition: int, offset: int, value: bytes) -> None:
        key = (partition, offset)
        if key in self.acked and self.acked[key] != value:
            raise AssertionError(f"two records acknowledged at {key}: {self.acked[key]!r} and {value!r}")
        self.acked[key] = value

    def fail(self, partition: int, value: bytes) -> None:
        self.failed.append((partition, value))

    def problems(self) -> list[str]:
        out: list[str] = []
        out += self._log_problems()
        out += self._acked_problems()
        out += self._failed_problems()
        out += self._value_problems()
        return out

    def _log_problems(self) -> list[str]:
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
        # Offsets of a partition are contiguous from the start of its log.
        by_p: dict[int, set[int]] = {}
        for p, o, _ in self.read:
            by_p.setdefault(p, set()).add(o)
        for p, offs in by_p.items():
            if self.log_start is not None and min(offs) != self.log_start:
                out.append(f"partition {p} read from offset {min(offs)}, its log starts at {self.log_start}")
            if max(offs) - min(offs) + 1 != len(offs):
                out.append(f"gap in partition {p}: {len(offs)} offsets between {min(offs)} and {max(offs)}")
        return out

    def _acked_problems(self) -> list[str]:
        out: list[str] = []
        at = {(p, o): v for p, o, v in self.read}
        for (p, o), v in self.acked.items():
            got = at.get((p, o))
            if got is None:
                out.append(f"lost write: {v!r} acknowledged at {p}/{o}, not read back")
            elif got != v:
                out.append(f"inconsistent offset {p}/{o}: acknowledged {v!r}, read {got!r}")
        return out

    def _failed_problems(self) -> list[str]:
        out: list[str] = []
        where: dict[bytes, list[tuple[int, int]]] = {}
        for p, o, v in self.read:
            where.setdefault(v, []).append((p, o))
        for p, v in self.failed:
            for rp, ro in where.get(v, []):
                if rp != p:
                    out.append(f"failed write {v!r} sent to partition {p} read in partition {rp} at {ro}")
                elif (rp, ro) in self.acked:
                    out.append(f"failed write {v!r} read at {rp}/{ro}, which acknowledged "
                               f"{self.acked[(rp, ro)]!r}")
        return out

    def _value_problems(self) -> list[str]:
        """Values read that were never sent; with idempotence, repeats and send order."""
        out: list[str] = []
        known = {v for (_, v) in self.acked.items()} | {v for _, v in self.failed}
        for values in self.sent.values():
            known.update(values)
        seen: dict[bytes, int] = {}
        for p, o, v in self.read:
            if v not in known:
                out.append(f"phantom write: {v!r} read at {p}/{o} was never sent")
            seen[v] = seen.get(v, 0) + 1
        if not self.idempotent:
            return out
        out += [f"value {v!r} read {n} times from an idempotent producer" for v, n in seen.items() if n > 1]
        for p, values in self.sent.items():
            rank = {v: i for i, v in enumerate(values)}
            order = [rank[v] for rp, _, v in self.read if rp == p and v in rank]
            for a, b in zip(order, order[1:]):
                if b <= a:
                    out.append(f"send order broken in partition {p}: {values[b]!r} read after {values[a]!r}")
                    break
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
