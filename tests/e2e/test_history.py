"""The history checker finds what it is meant to find, and accepts what faults may legally
leave behind (no broker needed)."""

import pytest

from history import History


def history(read, *, idempotent=False, failed=()) -> History:
    """Partition 0 was sent a, b, c, d; a, b and d were acknowledged at 0, 1 and 3 (so c, at
    offset 2 if present, is a failed write unless `failed` says otherwise)."""
    h = History(idempotent=idempotent)
    for v in (b"a", b"b", b"c", b"d"):
        h.send(0, v)
    h.ack(0, 0, b"a")
    h.ack(0, 1, b"b")
    h.ack(0, 3, b"d")
    for p, v in failed or [(0, b"c")]:
        h.fail(p, v)
    h.read = list(read)
    return h


CLEAN = [(0, 0, b"a"), (0, 1, b"b"), (0, 2, b"c"), (0, 3, b"d")]


@pytest.mark.parametrize("idempotent", [False, True])
def test_legal_histories_pass(idempotent):
    # The failed write present once, between the acknowledged ones.
    assert history(CLEAN, idempotent=idempotent).problems() == []
    # The failed write absent: a failed write sent but not stored.
    h = History(idempotent=idempotent)
    h.send(0, b"a")
    h.send(0, b"b")
    h.ack(0, 0, b"a")
    h.fail(0, b"b")
    h.read = [(0, 0, b"a")]
    assert h.problems() == []


def test_retried_duplicates_pass_without_idempotence():
    # A retry of b whose first attempt was committed, and c written twice before failing.
    read = [(0, 0, b"a"), (0, 1, b"b"), (0, 2, b"c"), (0, 3, b"d"), (0, 4, b"b"), (0, 5, b"c")]
    h = history(read)
    assert h.problems() == []
    assert h.duplicated_values() == 2


def problems_of(h: History) -> str:
    problems = h.problems()
    assert problems, "a bad history passed"
    return " | ".join(problems)


@pytest.mark.parametrize("idempotent", [False, True])
@pytest.mark.parametrize(
    "read, failed, found",
    [
        # an acknowledged write missing
        ([(0, 0, b"a"), (0, 2, b"c"), (0, 3, b"d")], None, "lost write"),
        # another value at an acknowledged offset
        ([(0, 0, b"a"), (0, 1, b"x"), (0, 2, b"c"), (0, 3, b"d")], [(0, b"x")], "inconsistent offset"),
        # two values at one offset, read out of order
        ([(0, 0, b"a"), (0, 1, b"b"), (0, 1, b"c"), (0, 3, b"d")], None, "duplicate offset"),
        ([(0, 0, b"a"), (0, 3, b"d"), (0, 1, b"b")], None, "non-monotonic"),
        ([(0, 0, b"a"), (0, 1, b"b"), (0, 3, b"d")], None, "gap"),
        # a partition whose first records are missing (nothing acknowledged there)
        (CLEAN + [(1, 1, b"c")], [(0, b"c"), (1, b"c")], "its log starts at 0"),
        # a failed write in another partition than it was sent to
        (CLEAN + [(1, 0, b"c")], None, "read in partition 1"),
        # a failed write in the place of an acknowledged one
        ([(0, 0, b"a"), (0, 1, b"c"), (0, 3, b"d")], None, "which acknowledged b'b'"),
        # a value nobody sent
        (CLEAN + [(0, 4, b"zz")], None, "phantom write"),
    ],
)
def test_bad_histories_fail(idempotent, read, failed, found):
    assert found in problems_of(history(read, idempotent=idempotent, failed=failed))


@pytest.mark.parametrize(
    "read, found",
    [
        # the failed write present twice
        (CLEAN + [(0, 4, b"c")], "read 2 times"),
        # an acknowledged write duplicated
        (CLEAN + [(0, 4, b"a")], "read 2 times"),
        # the failed write present, but after a write sent later
        ([(0, 0, b"a"), (0, 1, b"b"), (0, 2, b"d"), (0, 3, b"c")], "send order broken"),
    ],
)
def test_only_idempotent_histories_forbid_repeats_and_reordering(read, found):
    def build(idempotent: bool) -> History:
        h = history(read, idempotent=idempotent)
        if (0, 2, b"d") in read:  # the reordered case: d was acknowledged at 2
            del h.acked[(0, 3)]
            h.ack(0, 2, b"d")
        return h

    assert found in problems_of(build(True))
    assert build(False).problems() == []
