"""`python -m experiments.detection`: flags only; the work is `experiments.detection.run`."""

from experiments import cli
from experiments.detection import run

if __name__ == "__main__":
  cli.launch(run, config="detection_yolo.py", workdir="workdirs/detection")
