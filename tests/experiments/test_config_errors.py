"""Config errors fail before any compute, naming the field, the value and what was expected."""

import os

import jax
import pytest
from absl import flags
from ml_collections import config_flags

from cnnjax import train
from experiments import classification
from experiments.configs import lenet5_digits

DEFAULT = os.path.join(os.path.dirname(classification.__file__), "configs", "lenet5_digits.py")


def parse(*args):
  argv = ["prog", *args]
  values = flags.FlagValues()
  # The override flags (--config.x) are found in the argv given at definition, as in `app.run`.
  config_flags.DEFINE_config_file("config", DEFAULT, flag_values=values, lock_config=True, sys_argv=argv)
  values(argv)
  return values.config


def test_an_unknown_field_is_rejected_with_a_suggestion():
  with pytest.raises(AttributeError, match="num_stepz.*Did you mean \"num_steps\""):
    parse("--config.num_stepz=5")


def test_a_value_of_the_wrong_type_is_rejected():
  with pytest.raises(flags.IllegalFlagValueError, match="config.num_steps=abc"):
    parse("--config.num_steps=abc")


def test_overrides_parse_into_the_config():
  config = parse("--config.num_steps=7", "--config.optimizer.name=sgd")
  assert config.num_steps == 7 and config.optimizer.name == "sgd"


@pytest.mark.parametrize("field,value,message", [
    ("model", "resnet9000", r"unknown model name 'resnet9000'; expected one of: .*lenet5"),
    ("dataset", "nosuch", r"unknown dataset name 'nosuch'.*embedded datasets"),
    ("batch_size", -8, r"config.batch_size=-8: expected an integer >= 1"),
])
def test_unknown_model_dataset_or_bad_batch_fail_before_training(tmp_path, field, value, message):
  config = lenet5_digits.get_config()
  setattr(config, field, value)
  with pytest.raises(ValueError, match=message):
    classification.run(config, str(tmp_path))
  assert not os.path.exists(tmp_path / "checkpoints")


def test_a_batch_the_devices_do_not_divide_is_named(monkeypatch):
  monkeypatch.setattr(jax, "device_count", lambda: 4)
  config = lenet5_digits.get_config()
  config.batch_size = 30
  with pytest.raises(ValueError, match=r"config.batch_size=30: expected a multiple of the device count \(4 devices\)"):
    train.check_batch_size(config.batch_size)


@pytest.mark.parametrize("field,value,message", [
    ("label_smoothing", 5.0, r"config.label_smoothing=5.0: expected a number in \[0.0, 1.0\)"),
    ("eval_batch_size", 0, r"config.eval_batch_size=0: expected an integer >= 1"),
    ("image_size", -3, r"config.image_size=-3: expected an integer >= 0"),
    ("optimizer.warmup_steps", -5, r"config.optimizer.warmup_steps=-5: expected an integer >= 0"),
    ("optimizer.warmup_steps", 900, r"config.optimizer.warmup_steps=900: expected fewer steps than .*800"),
    ("mixup_alpha", -0.1, r"config.mixup_alpha=-0.1: expected a number in"),
    ("mix_switch_prob", 1.5, r"config.mix_switch_prob=1.5: expected a number in \[0.0, 1.0\]"),
    ("randaugment.num_ops", -1, r"config.randaugment.num_ops=-1: expected an integer >= 0"),
    ("randaugment.magnitude", 11.0, r"config.randaugment.magnitude=11.0: expected a number in \[0.0, 10.0\]"),
    ("host_crop", "random", r"config.host_crop='random': expected one of"),
    ("crop_scale", (0.5, 0.1), r"config.crop_scale=\(0.5, 0.1\): expected \(low, high\)"),
])
def test_every_classification_field_is_checked_before_any_data_is_read(tmp_path, field, value, message):
  config = lenet5_digits.get_config()
  config.data_dir = str(tmp_path / "data")
  config.update_from_flattened_dict({field: value})
  with pytest.raises(ValueError, match=message):
    classification.run(config, str(tmp_path / "work"))
  assert not os.path.exists(tmp_path / "data") and not os.path.exists(tmp_path / "work")
