from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from spectraflow.catalog.timerange import parse_time_range, stac_datetime
from spectraflow.errors import QueryError

MIDNIGHT = datetime(2024, 6, 1, tzinfo=UTC)
END_OF_JUNE = datetime(2024, 6, 30, 23, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2024-06-01", "2024-06-30", (MIDNIGHT, END_OF_JUNE)),
        (date(2024, 6, 1), date(2024, 6, 30), (MIDNIGHT, END_OF_JUNE)),
        ("20240601", " 2024-06-30 ", (MIDNIGHT, END_OF_JUNE)),
        (
            "2024-06-01T10:00:00Z",
            "2024-06-01T12:00:00+02:00",
            (MIDNIGHT.replace(hour=10), MIDNIGHT.replace(hour=10)),
        ),
        (
            "2024-06-01t10:00:00z",
            "2024-06-01 10:30",  # naive: UTC
            (MIDNIGHT.replace(hour=10), MIDNIGHT.replace(hour=10, minute=30)),
        ),
        (
            datetime(2024, 6, 1, 10),
            datetime(2024, 6, 1, 11, tzinfo=timezone(timedelta(hours=-5))),
            (MIDNIGHT.replace(hour=10), MIDNIGHT.replace(hour=16)),
        ),
        (None, "2024-06-30", (None, END_OF_JUNE)),
        ("2024-06-01", "..", (MIDNIGHT, None)),
        (None, None, (None, None)),
    ],
)
def test_parse_time_range(start: object, end: object, expected: tuple[object, object]) -> None:
    result = parse_time_range(start, end)  # type: ignore[arg-type]
    assert result == expected
    for value in result:
        assert value is None or value.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2024-06-01", "2024-06-30", "2024-06-01T00:00:00Z/2024-06-30T23:59:59.999999Z"),
        ("2024-06-01T12:00:00+02:00", None, "2024-06-01T10:00:00Z/.."),
        (None, "2024-06-30", "../2024-06-30T23:59:59.999999Z"),
        (None, None, None),
    ],
)
def test_stac_datetime(start: str | None, end: str | None, expected: str | None) -> None:
    assert stac_datetime(*parse_time_range(start, end)) == expected


def test_stac_datetime_takes_naive_and_converts_zones() -> None:
    plus_two = timezone(timedelta(hours=2))
    value = stac_datetime(datetime(2024, 6, 1), datetime(2024, 6, 2, 1, tzinfo=plus_two))
    assert value == "2024-06-01T00:00:00Z/2024-06-01T23:00:00Z"
    with pytest.raises(QueryError) as info:
        stac_datetime(datetime(2024, 6, 2), datetime(2024, 6, 1))
    assert info.value.where == "end"


@pytest.mark.parametrize(
    ("start", "end", "where", "fragments"),
    [
        ("2024-06-30", "2024-06-01", "end", ["2024-06-30", "2024-06-01", "before"]),
        ("2024-06-01T12:00Z", "2024-06-01T13:00+02:00", "end", ["before"]),
        ("2024-13-01", None, "start", ["'2024-13-01'"]),
        (None, "yesterday", "end", ["'yesterday'"]),
        (1717200000, None, "start", ["int"]),
    ],
)
def test_bad_time_range(start: object, end: object, where: str, fragments: list[str]) -> None:
    with pytest.raises(QueryError) as info:
        parse_time_range(start, end)  # type: ignore[arg-type]
    assert info.value.where == where
    assert all(fragment in str(info.value) for fragment in fragments)
    assert info.value.fix
