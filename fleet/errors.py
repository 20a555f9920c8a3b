"""Errors a user can act on.

Every FleetError carries one line that says what is wrong and how to fix it; `fleet.cli`
prints that line and exits 1 without a traceback. Anything else escaping is a bug.
"""

from __future__ import annotations


class FleetError(Exception):
    """A problem the user can fix; its message is shown as a single line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class ConfigError(FleetError):
    """Bad command-line options or configuration file."""


class InventoryError(FleetError):
    """The Ansible inventory cannot be read or describes an impossible fleet."""


class PlanError(FleetError):
    """The requested tasks and scenarios break the benchmark rules for some node."""


class ArtifactError(FleetError):
    """A model or dataset is missing, corrupt or does not match its task."""


class ProvisionError(FleetError):
    """A node could not be provisioned or deployed."""


class CollectError(FleetError):
    """Results could not be brought home safely from a node."""


class SubmissionError(FleetError):
    """The submission tree cannot be assembled or checked."""


class RunStateError(FleetError):
    """A run directory is missing, locked, or not resumable."""
