"""The model zoo: every architecture registered by name (`create`, `list_models`)."""

from cnnjax.models import alexnet  # noqa: F401
from cnnjax.models import convnd  # noqa: F401
from cnnjax.models import embedding  # noqa: F401
from cnnjax.models import heads  # noqa: F401
from cnnjax.models import inception  # noqa: F401
from cnnjax.models import lenet  # noqa: F401
from cnnjax.models import mlp  # noqa: F401
from cnnjax.models import nin  # noqa: F401
from cnnjax.models import resnet  # noqa: F401
from cnnjax.models import vgg  # noqa: F401
from cnnjax.models import yolo  # noqa: F401
from cnnjax.models.registry import count_params, create, list_models, register

__all__ = ["count_params", "create", "list_models", "register"]
