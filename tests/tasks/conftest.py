"""RetinaNet/BERT tests: digest and preprocessing caches in the session's temp dir."""

from __future__ import annotations

from harnessenv import isolated_caches_fixture

_tasks_env = isolated_caches_fixture("tasks")
