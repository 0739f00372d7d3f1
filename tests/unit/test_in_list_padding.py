"""IN lists padded to a power of two (cases.db.padded): few SQL texts, same rows."""

from cases.db import padded


def test_lengths_are_powers_of_two_and_the_values_are_kept():
    assert padded([]) == []
    assert [len(padded(list(range(n)))) for n in range(1, 10)] == [1, 2, 4, 4, 8, 8, 8, 8, 16]
    assert padded(["a", "b", "c"]) == ["a", "b", "c", "c"]
    assert set(padded(list(range(100)))) == set(range(100))
