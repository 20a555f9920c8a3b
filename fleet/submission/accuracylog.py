"""Hash and truncate mlperf_log_accuracy.json the way truncate_accuracy_log.py (v3.1) does.

The hash is computed on the full log, before truncation; the untruncated original stays in
raw/ (the submitter must keep it for review). The tree gets at most 8199 bytes.
"""

from __future__ import annotations

from pathlib import Path

from fleet.harness.digest import hash_file
from fleet.logparse import HASH_RE

KEEP_CHARS = 4096
ELLIPSIS = "\n\n...\n\n"


def truncated_text(text: str) -> str:
    """First and last 4096 characters with an ellipsis, or the text itself when short."""
    if len(text) < KEEP_CHARS:
        return text
    return text[:KEEP_CHARS] + ELLIPSIS + text[-KEEP_CHARS:]


def with_hash(accuracy_txt: str, digest: str) -> str:
    """accuracy.txt content with exactly one `hash=` line (ours), at the end."""
    lines = [line for line in accuracy_txt.splitlines() if not HASH_RE.match(line)]
    return "\n".join([*lines, f"hash={digest}"]) + "\n"


def write_truncated(source_json: Path, dest_dir: Path, accuracy_txt: str | None) -> str:
    """Write dest_dir/{mlperf_log_accuracy.json (truncated), accuracy.txt (+hash)}; return the hash."""
    digest = hash_file(source_json)
    text = Path(source_json).read_text(encoding="utf-8", errors="replace")
    (dest_dir / "mlperf_log_accuracy.json").write_text(truncated_text(text), encoding="utf-8")
    (dest_dir / "accuracy.txt").write_text(with_hash(accuracy_txt or "", digest), encoding="utf-8")
    return digest
