"""Training: state, optimizers, pure steps, data parallelism, checkpoints, metrics and the loop."""

from cnnjax.train.checkpoint import CheckpointDamagedError, Checkpointer, load_variables
from cnnjax.train.config import OptimizerConfig, TrainConfig
from cnnjax.train.loop import FitResult, fit
from cnnjax.train.metrics import MetricWriter, plot_curves, read_metrics, write_config, write_results
from cnnjax.train.optim import make_optimizer, make_schedule
from cnnjax.train.parallel import check_batch_size, data_mesh, maybe_initialize_distributed
from cnnjax.train.state import TrainState, create_train_state
from cnnjax.train.step import NonFiniteLossError, make_eval_step, make_train_step
from cnnjax.train.workdir import WorkdirError
