"""Domain errors for input data.

Validators collect every :class:`Problem` they find and raise one :class:`InputError`
listing them all, so a user fixes a file once rather than once per problem. ``app/errors.py``
alone turns these into HTTP responses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

#: Above this many problems of one kind only a sample is listed, with a summary line.
MAX_LISTED_PER_KIND = 50
#: Hard cap on problems listed in one report (a summary says how many were left out).
MAX_LISTED = 1000


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or repaired) in an input.

    Attributes
    ----------
    file
        The input part or file name the problem is in (``"uptake.csv"``, ``"areas"``).
    problem
        What is wrong, in plain words.
    fix
        How to fix it.
    row
        Line number in the file as a spreadsheet shows it (header is line 1, the first
        data row is line 2); for layers, the 1-based feature number. ``None`` when the
        problem concerns the whole file.
    column
        The column concerned, as named in the file, if any.
    value
        The offending value, shortened, if any.
    """

    file: str
    problem: str
    fix: str
    row: int | None = None
    column: str | None = None
    value: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class OutreachError(Exception):
    """Base class of the domain errors raised by ``geo`` and ``models``."""


class InputError(OutreachError):
    """Input data that cannot be used. Carries every problem found."""

    def __init__(self, problems: Iterable[Problem], title: str = "The input data has problems"):
        self.problems = list(problems)
        self.title = title
        super().__init__(f"{title}: " + "; ".join(_short(p) for p in self.problems[:5]))


class ParameterError(OutreachError):
    """Analysis parameters that cannot be used (e.g. negative radius). ``errors`` lists
    each as ``{"loc": [...], "msg": ...}``."""

    def __init__(self, errors: list[dict[str, Any]]):
        self.errors = errors
        super().__init__("; ".join(str(e.get("msg")) for e in errors))


class InfeasibleError(OutreachError):
    """A model has no solution for the given constraints."""


def _short(problem: Problem) -> str:
    where = problem.file
    if problem.row is not None:
        where += f" row {problem.row}"
    if problem.column:
        where += f" column {problem.column!r}"
    return f"{where}: {problem.problem}"


class ProblemList:
    """Collects problems, capping how many identical ones are listed.

    Many rows with the same problem (say 40,000 rows with ``vaccinated > eligible``) are
    listed up to :data:`MAX_LISTED_PER_KIND` times, then summarised in one extra problem
    giving the total count and the first rows, so the report stays readable.
    """

    def __init__(self) -> None:
        self.items: list[Problem] = []
        self._counts: dict[tuple[str, str, str | None], int] = {}
        self._rows: dict[tuple[str, str, str | None], Problem] = {}

    def add(self, problem: Problem) -> None:
        key = (problem.file, problem.problem, problem.column)
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        if count <= MAX_LISTED_PER_KIND:
            self.items.append(problem)
        else:
            self._rows.setdefault(key, problem)

    def add_rows(
        self,
        file: str,
        rows: Iterable[int],
        problem: str,
        fix: str,
        *,
        column: str | None = None,
        values: Iterable[Any] | None = None,
    ) -> None:
        """Add one problem per row (rows are spreadsheet line numbers)."""
        value_list = list(values) if values is not None else None
        for i, row in enumerate(rows):
            value = None if value_list is None else _shorten(value_list[i])
            self.add(Problem(file, problem, fix, row=int(row), column=column, value=value))

    def extend(self, problems: Iterable[Problem]) -> None:
        for p in problems:
            self.add(p)

    def __bool__(self) -> bool:
        return bool(self._counts)

    def __len__(self) -> int:
        return sum(self._counts.values())

    def result(self) -> list[Problem]:
        out = list(self.items)
        for key, count in self._counts.items():
            if count > MAX_LISTED_PER_KIND:
                file, text, column = key
                out.append(
                    Problem(
                        file,
                        f"{count - MAX_LISTED_PER_KIND} more rows with this problem: {text}",
                        self._rows[key].fix,
                        column=column,
                    )
                )
        if len(out) > MAX_LISTED:
            left = len(out) - MAX_LISTED
            out = out[:MAX_LISTED]
            out.append(Problem("*", f"{left} more problems not listed", "fix the ones above first"))
        return out

    def raise_if_any(self, title: str = "The input data has problems") -> None:
        if self:
            raise InputError(self.result(), title=title)


def _shorten(value: Any, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
