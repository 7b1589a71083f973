"""StopReport: what a stop did to every process of a tree."""

from __future__ import annotations

import json

from ._outcome import Outcome
from ._text import printable
from ._values import FrozenValue

TYPE_CHECKING = False  # not typing's: see the package's __init__
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

#: Outcomes that count as a clean stop (with return code 0 for "exited").
CLEAN_OUTCOMES = (Outcome.STOPPED, Outcome.EXITED)
#: An entry's fields that a report message always carries
#: (`_protocol.ENTRY_FIELDS`, which this module does not import: ``list``
#: loads it without the protocol).
_WIRE_FIELDS = ("pid", "name", "outcome", "returncode", "seconds", "member")


class ReportEntry(FrozenValue):
    """What happened to one process during a stop.

    Attributes:
        pid: The process id.
        name: ``argv[0]``'s basename, or the name the process gave in ``join(name=...)``.
        outcome: One of:
            ``stopped`` (it exited after the stop, without escalation),
            ``terminated`` (it was still running at its deadline and went after the polite OS request),
            ``killed`` (it had to be killed),
            ``exited`` (it had exited before the stop),
            ``failed`` (non-zero exit or a crash during its cleanup),
            ``lost`` (its own parent was lost during the stop, and it stopped on its own),
            ``unchecked`` (its state could not be read, for example because this process had
            no file descriptor left; it was signalled by pid, and may or may not be gone; or
            a registered root that `send-stop` could not tie to its channel, still running
            at its deadline and not signalled).
        returncode: Its exit status when known (negative: the signal that ended it, on POSIX);
            None for a descendant whose status only its own parent could collect.
        seconds: Seconds from the stop request to its exit, when known.
        member: Whether it had joined the bus.
        request: How it was asked to go, by the process that stopped it:
            ``stop`` (the bus's message, to a member), a signal's name
            (``SIGTERM``, ``SIGQUIT``, ...: a non-member's polite request on
            POSIX), ``CTRL_BREAK`` or ``TERMINATE`` (Windows); None where
            nobody asked it anything (a non-member's own workers, which their
            parent stops), or the stop found it gone.  Escalation, past a
            deadline, is told by ``outcome``.
        requested: Seconds from the stop request to ``request``, when known.

    Immutable, equal to another entry with the same fields, and hashable.
    """

    __slots__ = ("pid", "name", "outcome", "returncode", "seconds", "member", "request", "requested")
    pid: int
    name: str
    outcome: Outcome
    returncode: int | None
    seconds: float | None
    member: bool
    request: str | None
    requested: float | None

    def __init__(
        self,
        pid: int,
        name: str,
        outcome: Outcome,
        returncode: int | None = None,
        seconds: float | None = None,
        member: bool = True,
        request: str | None = None,
        requested: float | None = None,
    ) -> None:
        self._init(pid, name, outcome, returncode, seconds, member, request, requested)

    @property
    def ok(self) -> bool:
        """True for ``stopped``, or ``exited`` with return code 0 or unknown (a
        descendant whose status only its own parent could collect)."""
        return self.outcome == Outcome.STOPPED or (self.outcome == Outcome.EXITED and self.returncode in (0, None))

    def to_dict(self) -> dict[str, Any]:
        """The entry as a plain dict (JSON reports)."""
        return self.as_dict() | {"outcome": str(self.outcome)}

    def to_wire(self) -> dict[str, Any]:
        """The entry as a report message carries it (`_protocol.ENTRY_FIELDS`,
        and the optional fields only when they say something)."""
        return {key: value for key, value in self.to_dict().items() if key in _WIRE_FIELDS or value is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReportEntry:
        """Rebuild an entry from `to_dict` output (a report message's entries,
        which the protocol checked, or a saved JSON report).

        Raises:
            ValueError: ``outcome`` is not one of `Outcome`'s values.
        """
        return cls(**{**data, "outcome": Outcome(data["outcome"])})


class StopReport(FrozenValue):
    """The result of stopping one child's tree.

    Attributes:
        reason: The reason the stop carried.
        entries: One entry per process of the stopped subtree: the child first,
            then its descendants, parents before their children.
        seconds: Seconds the stop took, from request until every process was gone.
        unchecked: Pids whose children could not be listed (the stopping
            process had no file descriptor left, say): processes below them
            may be missing from the entries, and may still run.

    Immutable, equal to another report with the same fields, and hashable.
    """

    __slots__ = ("reason", "entries", "seconds", "unchecked")
    reason: str
    entries: tuple[ReportEntry, ...]
    seconds: float
    unchecked: tuple[int, ...]

    def __init__(
        self,
        reason: str,
        entries: tuple[ReportEntry, ...] = (),
        seconds: float = 0.0,
        unchecked: tuple[int, ...] = (),
    ) -> None:
        self._init(reason, entries, seconds, unchecked)

    @property
    def ok(self) -> bool:
        """True if every process stopped cleanly (``stopped``, or ``exited`` with 0)
        and the whole tree could be checked."""
        return all(e.ok for e in self.entries) and not self.unchecked

    def __iter__(self) -> Iterator[ReportEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def entry(self, pid: int) -> ReportEntry | None:
        """The entry of process ``pid``, or None."""
        return next((e for e in self.entries if e.pid == pid), None)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain dicts and lists, ready for `json.dumps`."""
        return {
            "reason": self.reason,
            "ok": self.ok,
            "seconds": round(self.seconds, 6),
            "entries": [e.to_dict() for e in self.entries],
            "unchecked": list(self.unchecked),
        }

    def to_json(self, **kwargs: Any) -> str:
        """The report as JSON; ``kwargs`` go to `json.dumps`."""
        return json.dumps(self.to_dict(), **kwargs)

    def format_table(self) -> str:
        """The report as a small text table, one line per process."""
        rows = [("PID", "NAME", "OUTCOME", "RC", "SECONDS", "MEMBER", "ASKED")]
        for e in self.entries:
            rows.append(
                (
                    str(e.pid),
                    printable(e.name),
                    e.outcome,
                    "-" if e.returncode is None else str(e.returncode),
                    "-" if e.seconds is None else f"{e.seconds:.3f}",
                    "yes" if e.member else "no",
                    _asked(e),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        status = "ok" if self.ok else "NOT ok"
        reason = printable(repr(self.reason))
        lines.append(f"stop {reason}: {len(self.entries)} process(es), {status}, {self.seconds:.3f} s")
        if self.unchecked:
            pids = ", ".join(map(str, self.unchecked))
            lines.append(f"the children of pid(s) {pids} could not be listed (no file descriptor left?): some may run")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StopReport:
        """Rebuild a report from `to_dict` output."""
        return cls(
            reason=data["reason"],
            entries=tuple(ReportEntry.from_dict(e) for e in data["entries"]),
            seconds=data.get("seconds", 0.0),
            unchecked=tuple(int(pid) for pid in data.get("unchecked", ())),
        )


def _asked(entry: ReportEntry) -> str:
    """The ASKED column: the request, and when it was sent (``SIGQUIT@0.000``)."""
    if entry.request is None:
        return "-"
    asked = printable(entry.request)  # a member's claim: never raw to a terminal
    return asked if entry.requested is None else f"{asked}@{entry.requested:.3f}"


def merge_entries(groups: Iterable[Iterable[ReportEntry]]) -> tuple[ReportEntry, ...]:
    """Concatenate entry lists, keeping the first entry seen for each pid."""
    seen: set[int] = set()
    out = []
    for group in groups:
        for e in group:
            if e.pid not in seen:
                seen.add(e.pid)
                out.append(e)
    return tuple(out)
