"""Style transfer with L-BFGS (Gatys et al.'s optimizer) on sigmoid-parameterised pixels."""

from experiments.configs import style_default


def get_config():
  c = style_default.get_config()
  c.optimizer = "lbfgs"  # the zoom line search sets each step; learning_rate is unused
  c.parameterization = "sigmoid"  # no clipping to break the curvature pairs
  c.num_steps = 50  # each L-BFGS step costs several function evaluations
  return c
