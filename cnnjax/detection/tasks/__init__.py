"""Train-and-evaluate runners of the detection experiment, one per task (called by experiments/detection.py)."""
