"""The harness's own user-facing error.

The harness runs on nodes and imports nothing from the rest of `fleet` (only
`fleet.__version__`), so it cannot raise `fleet.errors.FleetError`. A HarnessError carries
one line saying what is wrong and how to fix it; `python -m fleet.harness` prints it to
stderr and exits 1 without a traceback. Anything else escaping is a bug.
"""

from __future__ import annotations


def one_line(text: object, limit: int | None = None) -> str:
    """`text` (an exception's message, say) with its whitespace runs made single spaces, cut at
    `limit` characters: how a library's multi-line complaint goes into one line."""
    return " ".join(str(text).split())[:limit]


class HarnessError(Exception):
    """A problem the user can fix (bad option, missing asset, wrong model); one line."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class ScenarioInfeasible(HarnessError):
    """The node cannot meet the scenario's rules (one sample already takes longer than the
    Server latency bound): its modes are recorded as `infeasible`, not run to an INVALID end."""
