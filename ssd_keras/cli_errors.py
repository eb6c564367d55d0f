"""The command line's user errors: what they are and the one line each is reported as.

A `CLIError` (bad argument, missing file, a run folder a command may not use) is printed by
`ssd_keras.cli.main` as ``ssd-keras COMMAND: error: MESSAGE`` with exit status `EXIT_USAGE`.
"""

from __future__ import annotations

EXIT_USAGE = 2


class CLIError(Exception):
    """A user error: bad argument or missing file. Printed as one line, exit status 2."""


def data_error_line(error) -> str:
    """A `DataValidationError` as one line: the first bad item, and how many more."""
    unknown = getattr(error, "unknown_classes", None)
    if unknown:
        return (
            f"the dataset has {len(error.report)} object(s) of class(es) {', '.join(unknown)}, "
            f"which are not among the classes {', '.join(error.classes)} (first: "
            f"{error.report.issues[0].file}); use a dataset of these classes, or add "
            "--unknown-classes drop to leave those objects out"
        )
    issues = [i for i in error.report or () if i.action == "error"]
    if not issues:
        return " ".join(str(error).split())
    more = f" (and {len(issues) - 1} more bad item(s))" if len(issues) > 1 else ""
    return (
        f"{issues[0].file}: {issues[0].reason}{more}; fix or remove it, or add --bad-items drop "
        "to leave it out"
    )
