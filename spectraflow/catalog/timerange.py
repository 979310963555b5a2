"""Time ranges for catalog searches (pure).

:func:`parse_time_range` turns dates and times into UTC datetimes; :func:`stac_datetime` writes
them as the RFC 3339 interval that STAC APIs take.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from spectraflow.errors import QueryError

__all__ = ["parse_time_range", "stac_datetime"]

_TIME_FORMATS = (
    "give an ISO 8601 date or date-time, e.g. 2024-06-01, 2024-06-01T10:00:00Z or "
    "2024-06-01T10:00:00+02:00 (naive times are UTC, a date-only end includes its whole day), "
    "or None / '..' for an open end"
)


def parse_time_range(
    start: date | datetime | str | None, end: date | datetime | str | None
) -> tuple[datetime | None, datetime | None]:
    """Normalise a search time range to UTC datetimes.

    Parameters
    ----------
    start, end
        ``date``, ``datetime`` or ISO 8601 string (``2024-06-01``, ``2024-06-01T10:00:00Z``,
        ``2024-06-01T10:00:00+02:00``); naive times are UTC. A date-only start is 00:00 of that
        day; a date-only end includes the whole day (23:59:59.999999). ``None``, ``""`` or
        ``".."`` leave that end open.

    Returns
    -------
    tuple of (datetime or None, datetime or None)
        Timezone-aware UTC datetimes; ``None`` for an open end.

    Raises
    ------
    QueryError
        With ``where="start"`` or ``"end"``: an unreadable value, or an end before the start.
    """
    start_utc = _parse_time(start, where="start", is_end=False)
    end_utc = _parse_time(end, where="end", is_end=True)
    _check_order(start_utc, end_utc)
    return start_utc, end_utc


def stac_datetime(start: datetime | None, end: datetime | None) -> str | None:
    """The STAC API ``datetime`` parameter for a time range.

    Parameters
    ----------
    start, end
        Datetimes (naive ones are UTC), or ``None`` for an open end, as from
        :func:`parse_time_range`.

    Returns
    -------
    str or None
        RFC 3339 interval in UTC, e.g. ``"2024-06-01T00:00:00Z/2024-06-30T23:59:59.999999Z"``,
        with ``..`` for one open end; ``None`` when both ends are open: omit the parameter, as
        the OGC API / STAC grammar has no ``../..``.
    """
    start_utc = None if start is None else _as_utc(start, where="start")
    end_utc = None if end is None else _as_utc(end, where="end")
    _check_order(start_utc, end_utc)
    if start_utc is None and end_utc is None:
        return None
    return f"{_rfc3339(start_utc)}/{_rfc3339(end_utc)}"


def _parse_time(value: object, *, where: str, is_end: bool) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return _as_utc(value, where=where)
    if isinstance(value, date):
        return datetime.combine(value, time.max if is_end else time.min, tzinfo=UTC)
    if not isinstance(value, str):
        what = f"{where} must be a date, datetime or ISO 8601 string, not a {type(value).__name__}"
        raise QueryError(what, where=where, fix=_TIME_FORMATS)
    text = value.strip().upper()  # fromisoformat wants "T" and "Z" upper case
    if text in {"", ".."}:
        return None
    try:
        return _parse_time(date.fromisoformat(text), where=where, is_end=is_end)
    except ValueError:
        pass
    try:
        return _as_utc(datetime.fromisoformat(text), where=where)
    except ValueError:
        what = f"cannot read {where} {value!r}"
        raise QueryError(what, where=where, fix=_TIME_FORMATS) from None


def _as_utc(value: datetime, *, where: str) -> datetime:
    if value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        what = f"{where} {value.isoformat()} is out of range in UTC"
        raise QueryError(what, where=where, fix=_TIME_FORMATS) from None


def _check_order(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end < start:
        what = f"end {_rfc3339(end)} is before start {_rfc3339(start)}"
        fix = "give an end on or after the start (a date-only end includes its whole day)"
        raise QueryError(what, where="end", fix=fix)


def _rfc3339(value: datetime | None) -> str:
    if value is None:
        return ".."
    utc = _as_utc(value, where="time").replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds") + "Z"
