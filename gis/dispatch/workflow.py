"""The case state machine: seven steps, reject, rework, extension and reply, as one table.

collect → file → dispatch → handle → report back → verify & close → evaluate
(信息收集 → 案卷建立 → 任务派遣 → 任务处理 → 处理反馈 → 核查结案 → 综合评价).
Pure logic: no database here; gis.dispatch.cases applies the result and writes the audit row.
"""

from __future__ import annotations

from dataclasses import dataclass

from gis.platform.errors import ConflictError, InvalidInputError

STATUSES = ("collected", "filed", "dispatched", "handled", "reported", "closed", "evaluated",
            "rejected")
OPEN_STATUSES = frozenset({"collected", "filed", "dispatched", "handled", "reported"})
SATISFACTION_VALUES = ("satisfied", "basically", "unsatisfied")


@dataclass(frozen=True)
class Transition:
    """One row of the transition table: where an action may start and where it leads."""

    action: str
    from_statuses: frozenset[str]
    to_status: str | None  # None: the status stays (extension, reply)
    needs_note: bool = False
    label_zh: str = ""


TRANSITIONS: dict[str, Transition] = {t.action: t for t in (
    Transition("file", frozenset({"collected"}), "filed", label_zh="立案"),
    Transition("reject", frozenset({"collected"}), "rejected", needs_note=True,
               label_zh="不予立案"),
    Transition("dispatch", frozenset({"filed"}), "dispatched", label_zh="派遣"),
    Transition("handle", frozenset({"dispatched"}), "handled", label_zh="处理"),
    Transition("report", frozenset({"handled"}), "reported", label_zh="反馈"),
    Transition("close", frozenset({"reported"}), "closed", label_zh="核查结案"),
    # Verification failed: the unit does the job again under the original deadline (返工).
    Transition("rework", frozenset({"reported"}), "dispatched", needs_note=True,
               label_zh="返工"),
    Transition("evaluate", frozenset({"closed"}), "evaluated", label_zh="综合评价/回访"),
    Transition("extend", frozenset({"dispatched", "handled"}), None, needs_note=True,
               label_zh="延期"),
    # Reply to the complainant (回复); a rejected complaint is owed a reply too.
    Transition("reply", frozenset({"filed", "dispatched", "handled", "reported", "closed",
                                   "evaluated", "rejected"}), None, label_zh="回复"),
)}
# 'collect' opens a case; it is recorded in the audit but is not a transition one can request.
ACTIONS = ("collect", *TRANSITIONS)


def allowed_actions(status: str) -> list[str]:
    """Actions that may be requested on a case in `status`, in table order."""
    _check_status(status)
    return [t.action for t in TRANSITIONS.values() if status in t.from_statuses]


def next_status(status: str, action: str) -> str:
    """Status after `action` on a case in `status`; refuses actions the table does not allow."""
    _check_status(status)
    rule = TRANSITIONS.get(action)
    if rule is None:
        raise InvalidInputError(
            f"unknown case action {action!r}; expected one of {', '.join(TRANSITIONS)}")
    if status not in rule.from_statuses:
        allowed = ", ".join(allowed_actions(status)) or "none"
        raise ConflictError(
            f"cannot {action} a case that is {status!r}; allowed actions: {allowed}")
    return rule.to_status or status


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise InvalidInputError(f"unknown case status {status!r}; expected one of "
                                f"{', '.join(STATUSES)}")
