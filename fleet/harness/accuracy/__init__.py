"""Accuracy scripts: mlperf_log_accuracy.json + ground truth -> the line the checker parses."""
