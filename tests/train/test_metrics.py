"""The curves plot: one panel per measured quantity, train and evaluation together, run totals left out."""

import json

import numpy as np
from PIL import Image

from cnnjax.train.metrics import metric_panels, plot_curves

LOGGED = ["train_loss", "train_accuracy", "train_error", "train_grad_norm", "train_learning_rate", "images_per_s",
          "test_loss", "test_accuracy", "ema_test_accuracy", "ema_test_loss", "train_time_s", "train_images_per_s"]


def test_train_and_evaluation_of_a_metric_share_a_panel():
  assert metric_panels(LOGGED) == {
      "loss": ["ema_test_loss", "test_loss", "train_loss"],
      "accuracy": ["ema_test_accuracy", "test_accuracy", "train_accuracy"],
      "error": ["train_error"],
      "grad_norm": ["train_grad_norm"],
      "images_per_s": ["images_per_s"],
      "learning_rate": ["train_learning_rate"],
  }
  assert metric_panels(["loss", "train_loss", "train_"]) == {"loss": ["loss", "train_loss"], "train_": ["train_"]}


def test_curves_png_is_a_grid(tmp_path):
  with open(tmp_path / "metrics.jsonl", "w") as f:
    for step in range(10, 110, 10):
      row = {k: float(np.exp(-step / 50)) for k in LOGGED if k.startswith("train_")}
      f.write(json.dumps({"step": step, **row, "images_per_s": 1000.0 + step}) + "\n")
      if step % 50 == 0:
        f.write(json.dumps({"step": step, "test_loss": 0.5, "test_accuracy": 0.9, "ema_test_loss": 0.4,
                            "ema_test_accuracy": 0.92}) + "\n")
    f.write(json.dumps({"step": 100, "train_time_s": 12.0, "train_images_per_s": 900.0}) + "\n")
  width, height = Image.open(plot_curves(str(tmp_path))).size
  # Six panels in two rows of three (4.5 x 3.2 inches each at 100 dpi), not one row of twelve.
  assert (width, height) == (1350, 640)
