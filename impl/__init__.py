"""n2n-blocks: deep-learning blocks written from scratch with plain tensor operations.

Every block follows one contract (see :class:`impl.module.Module`): ``forward`` / ``__call__``,
``backward`` (returns the input gradient, accumulates parameter gradients), ``param()``,
``zero_grad()``, ``state_dict()`` with torch.nn's keys.
"""

from .activation import LeakyReLU, ReLU, Sigmoid, Tanh
from .container import Add, Concat, Identity, Sequential, Shift
from .conv import Conv2d, ConvTranspose2d, TransposeConv2d
from .errors import DTypeError, OutputPaddingError, ShapeError, StateDictError, UnknownModeError
from .loss import MSE, MSELoss
from .module import Module
from .optim import SGD, Adam, Optimizer
from .pool import MaxPool2d
from .upsample import NearestUpsampling, Upsampling

__all__ = [
    "Module",
    "Sequential",
    "Concat",
    "Add",
    "Identity",
    "Shift",
    "MaxPool2d",
    "Conv2d",
    "ConvTranspose2d",
    "Upsampling",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "MSELoss",
    "SGD",
    "Adam",
    "Optimizer",
    # EE-559 course names
    "MSE",
    "TransposeConv2d",
    "NearestUpsampling",
    "ShapeError",
    "DTypeError",
    "OutputPaddingError",
    "UnknownModeError",
    "StateDictError",
]
