"""Tuned values only run on the machine they were tuned on.

`fleet run --tuned` puts stored values into RunSpec.tuning together with the host-facts
digest they were measured on (`tuned_for`) and the fields they set (`tuned_fields`). The
node checks the digest before anything runs: on a changed machine it drops those fields,
so the harness measures its own defaults, and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from typing import Any

from fleet.harness.spec import RunSpec, Tuning
from fleet.harness.tuning.digest import facts_digest

_KNOWN = {f.name for f in fields(Tuning)} - {"tuned_for", "tuned_fields"}


def accept_tuning(spec: RunSpec, host: Mapping[str, Any], versions: Mapping[str, Any],
                  echo: Callable[[str], None]) -> RunSpec:
    """`spec`, or a copy without its tuned values when this node's digest differs."""
    tuning = spec.tuning
    if not tuning.tuned_for:
        return spec
    here = facts_digest(host, versions)
    if here == tuning.tuned_for:
        return spec
    dropped = sorted(name for name in tuning.tuned_fields if name in _KNOWN)
    echo(f"warning: {spec.system_name or 'this node'}: host facts changed since `fleet tune` "
         f"(digest {here}, tuned for {tuning.tuned_for}); running with defaults instead of the "
         f"tuned {', '.join(dropped) or 'values'}; rerun fleet tune")
    cleared = dict.fromkeys(dropped)
    return replace(spec, tuning=replace(tuning, tuned_for=None, tuned_fields=[], **cleared))
