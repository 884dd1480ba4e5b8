"""The phases' worker pool: results in order, a bounded window, and a failed job handed to `on_error`."""

from __future__ import annotations

import pytest

from media_assets.phases.workers import Workers


def square_or_fail(n: int) -> int:
    if n == 3:
        raise ValueError("bad file")
    return n * n


@pytest.mark.parametrize("count", [1, 2])
def test_results_come_back_in_order(count: int) -> None:
    with Workers(count, in_flight_per_worker=1) as pool:
        assert list(pool.map(square_or_fail, ((n, (n,)) for n in [5, 1, 4, 2]))) == [(5, 25), (1, 1), (4, 16), (2, 4)]


def test_a_failed_job_goes_to_on_error_in_a_pool() -> None:
    with Workers(2) as pool:
        results = dict(pool.map(square_or_fail, ((n, (n,)) for n in range(6)), on_error=lambda key, error: -key))
    assert results == {0: 0, 1: 1, 2: 4, 3: -3, 4: 16, 5: 25}


def test_without_on_error_a_failure_stops_the_map() -> None:
    with Workers(2) as pool, pytest.raises(ValueError, match="bad file"):
        list(pool.map(square_or_fail, ((n, (n,)) for n in range(6))))
