"""The command line every experiment shares: `--config=FILE.py [--config.field=value ...] --workdir=DIR`.

Flags are defined only when an experiment runs as a script, so the modules can
be imported together (by tests, notebooks, other experiments). Misuse (a config
file that is missing, has no `get_config`, or belongs to another experiment; a
workdir or `*_dir` field that is a file; a resume with a changed config) stops
with one message naming the file, path or field, before any data is read.
"""

import importlib.util
import json
import os
import sys
from typing import Callable

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from cnnjax.train import workdir as workdir_lib

CONFIGS = os.path.join(os.path.dirname(__file__), "configs")
# Each entry point's default config: its top-level fields are what a config of that experiment has.
DEFAULT_CONFIGS = {"classification": "lenet5_digits.py", "detection": "detection_yolo.py",
                   "embedding": "embedding_default.py", "style_transfer": "style_default.py",
                   "benchmark": "benchmark_default.py",
                   "claims.why_convolutions": "claims_why_convolutions.py",
                   "claims.augmentation": "claims_augmentation.py",
                   "claims.gallery": "claims_gallery.py",
                   "claims.anchors": "claims_anchors.py",
                   "claims.transfer": "claims_transfer.py",
                   "claims.what_convnets_learn": "claims_what_convnets_learn.py",
                   "claims.classic_networks": "claims_classic_networks.py",
                   "claims.detectors": "claims_detectors.py",
                   "claims.window_stride": "claims_window_stride.py"}


def _summary(results: dict) -> str:
  return json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()}, indent=2, default=str)


def launch(
    run: Callable[[ml_collections.ConfigDict, str], dict],
    *,
    config: str,
    workdir: str,
    report: Callable[[dict], str] = _summary,
) -> None:
  """Defines `--config` (default `configs/<config>`), `--workdir` and `--allow_config_change`, then prints
  `report(run(config, workdir))`."""
  default = os.path.join(CONFIGS, config)
  config_flag = config_flags.DEFINE_config_file(
      "config", default, "Experiment config file (a module with get_config()).", lock_config=True
  )
  workdir_flag = flags.DEFINE_string(
      "workdir", workdir, "Where config.json, metrics.jsonl, checkpoints/, plots/ and results.json go."
  )
  allow_flag = flags.DEFINE_bool(
      "allow_config_change", False, "Resume a workdir even though the config differs from its config.json in "
      "fields that change results (the old one is kept as config.before-<time>.json)."
  )

  def parse(argv: list[str]) -> list[str]:
    problem = config_file_problem(_config_path(argv, default))
    if problem:
      sys.stderr.write(f"FATAL Flags parsing error: {problem}\n")
      sys.exit(1)
    return app.parse_flags_with_usage(argv)

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cfg = config_flag.value
    try:
      check_experiment(cfg, _experiment_of(config), _config_path(sys.argv, default))
      check_paths(cfg, workdir_flag.value)
      if allow_flag.value:
        with cfg.unlocked():
          cfg[workdir_lib.OVERRIDE] = True
      # Before the run reads data or writes anything; the run itself takes the lock.
      workdir_lib.check_free(workdir_flag.value)
      workdir_lib.check_config(workdir_flag.value, cfg)
    except (ValueError, workdir_lib.WorkdirError) as e:
      raise app.UsageError(str(e)) from None
    print(report(run(cfg, workdir_flag.value)))

  app.run(main, flags_parser=parse)


def _experiment_of(config_file: str) -> str | None:
  return next((name for name, file in DEFAULT_CONFIGS.items() if file == config_file), None)


def _config_path(argv: list[str], default: str) -> str:
  """The file `--config` names in `argv` (without a `:argument` suffix), or `default`."""
  probe = flags.FlagValues()
  flags.DEFINE_string("config", default, "", flag_values=probe)
  probe(argv, known_only=True)
  return probe.config.split(":", 1)[0]


def config_file_problem(path: str) -> str | None:
  """Why `path` is not a usable config file (missing, failing to load, no `get_config`), or None."""
  if not os.path.isfile(path):
    return f"--config={path}: no such file; give the path of a config module such as {CONFIGS}/<name>.py"
  try:
    module = _load_module(path)
  except Exception as e:  # a config file is user code: any failure to load it is reported the same way
    return f"--config={path} fails to load: {type(e).__name__}: {e}"
  if not callable(getattr(module, "get_config", None)):
    return f"--config={path} defines no get_config(); a config module returns its ml_collections.ConfigDict there"
  return None


def check_experiment(config: ml_collections.ConfigDict, experiment: str | None, path: str) -> None:
  """Raises ValueError when `config` lacks fields of `experiment`'s configs, naming the experiment it fits."""
  if experiment is None:
    return
  fields = set(config.keys())
  expected = {name: set(_default_config(file).keys()) for name, file in DEFAULT_CONFIGS.items()}
  missing = sorted(expected[experiment] - fields)
  if not missing:
    return
  fits = min(expected, key=lambda name: len(expected[name] - fields))
  hint = (f"it is a config of {fits}: run python -m experiments.{fits} --config={path}"
          if not expected[fits] - fields else "it fits no experiment")
  raise ValueError(f"--config={path} is not a {experiment} config (it has no {', '.join(missing[:6])}"
                   f"{', ...' if len(missing) > 6 else ''}); {hint}")


def experiment_of_config(config: ml_collections.ConfigDict) -> str | None:
  """The experiment (not the benchmark) whose default config's top-level fields (and `claim` fields, which tell
  the claims runners apart) `config` all has, or None. Where several fit, the one with the most fields (the most
  specific) is chosen.
  """
  fields = _field_names(config)
  fitting = [(len(keys), name) for name, keys in
             ((name, _field_names(_default_config(file))) for name, file in DEFAULT_CONFIGS.items()
              if name != "benchmark") if keys <= fields]
  return max(fitting)[1] if fitting else None


def _field_names(config: ml_collections.ConfigDict) -> set[str]:
  claim = config.get("claim") or {}
  return set(config.keys()) | {f"claim.{key}" for key in claim.keys()}


def _default_config(file: str) -> ml_collections.ConfigDict:
  return _load_module(os.path.join(CONFIGS, file)).get_config()


def _load_module(path: str):
  """Runs the Python file `path` as a module of its own (not in `sys.modules`), as ml_collections does."""
  spec = importlib.util.spec_from_file_location(f"_config_{os.path.basename(path)[:-3]}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def check_paths(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Raises `WorkdirError` when the workdir or a set `*_dir` field is (or lies under) a file."""
  workdir_lib.check_directory_path(workdir, what="--workdir")
  for field, value in _flat_items(config):
    if field.endswith("_dir") and isinstance(value, str) and value:
      workdir_lib.check_directory_path(value, what=f"config.{field}")


def _flat_items(config: ml_collections.ConfigDict, prefix: str = ""):
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _flat_items(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", value
