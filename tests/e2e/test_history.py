"""The history checker finds what it is meant to find."""

from history import History


def base() -> History:
    h = History()
    h.ack(0, 0, b"a")
    h.ack(0, 1, b"b")
    h.read = [(0, 0, b"a"), (0, 1, b"b")]
    return h


def test_clean_history_has_no_problems():
    assert base().problems() == []


def test_lost_write_is_found():
    h = base()
    h.read = [(0, 0, b"a")]
    assert any("lost write" in p for p in h.problems())


def test_inconsistent_and_duplicate_offsets_are_found():
    h = base()
    h.read = [(0, 0, b"a"), (0, 1, b"x"), (0, 1, b"b")]
    problems = h.problems()
    assert any("inconsistent offset" in p or "duplicate offset" in p for p in problems)
    assert any("non-monotonic" in p for p in problems)


def test_gap_is_found():
    h = base()
    h.read.append((0, 3, b"c"))
    assert any("gap" in p for p in h.problems())
