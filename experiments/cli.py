"""The command line every experiment shares: `--config=FILE.py [--config.field=value ...] --workdir=DIR`.

Flags are defined only when an experiment runs as a script, so the modules can
be imported together (by tests, notebooks, other experiments).
"""

import json
import os
from typing import Callable

import ml_collections
from absl import app, flags
from ml_collections import config_flags

CONFIGS = os.path.join(os.path.dirname(__file__), "configs")


def _summary(results: dict) -> str:
  return json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()}, indent=2, default=str)


def launch(
    run: Callable[[ml_collections.ConfigDict, str], dict],
    *,
    config: str,
    workdir: str,
    report: Callable[[dict], str] = _summary,
) -> None:
  """Defines `--config` (default `configs/<config>`) and `--workdir`, then prints `report(run(config, workdir))`."""
  config_flag = config_flags.DEFINE_config_file(
      "config", os.path.join(CONFIGS, config), "Experiment config file (a module with get_config()).", lock_config=True
  )
  workdir_flag = flags.DEFINE_string(
      "workdir", workdir, "Where config.json, metrics.jsonl, checkpoints/, plots/ and results.json go."
  )

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    print(report(run(config_flag.value, workdir_flag.value)))

  app.run(main)
