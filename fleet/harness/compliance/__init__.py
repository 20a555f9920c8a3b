"""Compliance tests TEST01, TEST04, TEST05: audit settings (audit.py) and verification (verify.py)."""
