"""mlperf-fleet: MLPerf Inference v3.1 across a lab of machines, from one Ansible inventory."""

__version__ = "0.1.0"
