"""Reporting bad dataset items: one summary naming each file and reason, instead of a crash.

Parsers collect a `DataIssue` for every item they fix or drop (a missing or unreadable image, an
annotation that is missing or malformed, a box outside the image, a zero-size box, an unknown
class, ...) in a `DataReport`; at the end of a parse the report is emitted once as a warning
(and kept on the generator as ``DataGenerator.data_report``), or raised as a `DataValidationError`
when the chosen policy says so.
"""

from __future__ import annotations

import collections
import dataclasses
import warnings

# What happened to the item. "kept" = reported only.
ACTIONS = ("dropped image", "dropped box", "clipped box", "fixed", "kept", "error")


class DataValidationError(ValueError):
    """Bad dataset items under a policy that asks to raise; the message lists every item."""

    def __init__(
        self,
        message: str,
        report: DataReport | None = None,
        unknown_classes: list[str] | None = None,
        classes: list[str] | None = None,
    ):
        super().__init__(message)
        self.report = report
        # For unknown class names: the names found, and the class list they are not in.
        self.unknown_classes = unknown_classes
        self.classes = classes


class DatasetError(Exception):
    """The generator has no dataset, or a dataset file is not what it should be."""


class DataWarning(UserWarning):
    """The one summary warning a parser emits about the bad items it fixed or dropped."""


@dataclasses.dataclass(frozen=True)
class DataIssue:
    """One bad item.

    Attributes:
        file: the file the problem is in (annotation, image or CSV/JSON file).
        reason: what is wrong, with the offending field and value.
        action: what was done: one of `ACTIONS`.
    """

    file: str
    reason: str
    action: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason} -> {self.action}"


class DataReport:
    """The bad items found by one parse, in the order they were found."""

    def __init__(self, source: str = "dataset"):
        self.source = source
        self.issues: list[DataIssue] = []

    def add(self, file: str, reason: str, action: str) -> None:
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
        self.issues.append(DataIssue(str(file), reason, action))

    def __len__(self) -> int:
        return len(self.issues)

    def __iter__(self):
        return iter(self.issues)

    def __bool__(self) -> bool:
        return bool(self.issues)

    def with_action(self, action: str) -> list[DataIssue]:
        return [issue for issue in self.issues if issue.action == action]

    def counts(self) -> dict[str, int]:
        return dict(collections.Counter(issue.action for issue in self.issues))

    def summary(self, max_lines: int | None = 50) -> str:
        """A multi-line text: a count per action, then one line per issue (the first max_lines)."""
        if not self.issues:
            return f"{self.source}: no bad items."
        # Counted per action: "kept" items are notes (nothing dropped), not further bad items.
        counts = ", ".join(f"{n} {action}" for action, n in self.counts().items())
        lines = [f"{self.source}: {counts}:"]
        shown = self.issues if max_lines is None else self.issues[:max_lines]
        lines += [f"  {issue}" for issue in shown]
        if len(shown) < len(self.issues):
            lines.append(
                f"  ... and {len(self.issues) - len(shown)} more (see DataGenerator.data_report)"
            )
        return "\n".join(lines)

    def emit(self, stacklevel: int = 3) -> None:
        """Warns once with the summary (nothing when there are no issues)."""
        if self.issues:
            warnings.warn(self.summary(), DataWarning, stacklevel=stacklevel)

    def raise_errors(self) -> None:
        """Raises a DataValidationError listing the issues whose action is "error", if any."""
        errors = self.with_action("error")
        if errors:
            lines = [f"{self.source}: {len(errors)} item(s) could not be used:"]
            lines += [f"  {issue.file}: {issue.reason}" for issue in errors[:200]]
            if len(errors) > 200:
                lines.append(f"  ... and {len(errors) - 200} more")
            raise DataValidationError("\n".join(lines), report=self)
