"""Small SQL helpers that differ between SQLite and PostgreSQL (date arithmetic, least/greatest)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Date, Float, Integer, cast, func, literal, type_coerce
from sqlalchemy.sql.elements import BindParameter

from ronda.core.db import UTCDateTime


class Dialect:
    """Builds the few expressions whose SQL differs by database."""

    def __init__(self, name: str) -> None:
        self.sqlite = name == "sqlite"

    def moment(self, value: datetime) -> BindParameter[datetime]:
        # Bound through UTCDateTime so SQLite compares it in the format it stores.
        return literal(value, UTCDateTime())

    def day(self, value: date) -> BindParameter[date]:
        return literal(value, Date())

    def least(self, *values: Any) -> ColumnElement[Any]:
        return func.min(*values) if self.sqlite else func.least(*values)

    def greatest(self, *values: Any) -> ColumnElement[Any]:
        return func.max(*values) if self.sqlite else func.greatest(*values)

    def seconds(self, later: Any, earlier: Any) -> ColumnElement[float]:
        """later - earlier in seconds, for timestamps."""
        if self.sqlite:
            return type_coerce((func.julianday(later) - func.julianday(earlier)) * 86400.0, Float())
        return cast(func.extract("epoch", later - earlier), Float())

    def days(self, later: Any, earlier: Any) -> ColumnElement[int]:
        """later - earlier in whole days, for dates."""
        if self.sqlite:
            return cast(func.julianday(later) - func.julianday(earlier), Integer())
        return type_coerce(later - earlier, Integer())

    def plus_days(self, moment: Any, days: int) -> ColumnElement[datetime]:
        """A timestamp `days` later (kept in the stored text form on SQLite)."""
        if self.sqlite:
            return type_coerce(func.strftime("%Y-%m-%d %H:%M:%f", moment, f"+{int(days)} days"), UTCDateTime())
        return type_coerce(moment + func.make_interval(0, 0, 0, int(days)), UTCDateTime())

    def date_of(self, moment: Any) -> ColumnElement[date]:
        if self.sqlite:
            return type_coerce(func.date(moment), Date())
        return cast(moment, Date())

    def plus_days_date(self, day: Any, days: int) -> ColumnElement[date]:
        if self.sqlite:
            return type_coerce(func.date(day, f"+{int(days)} days"), Date())
        return type_coerce(day + int(days), Date())
