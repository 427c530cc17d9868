"""The EE-559 course's import path: the course's block names and ``Model`` (see
:mod:`impl.app.course`). Importing it loads torch, the blocks and the inference path only."""

from impl import MSE, SGD, Adam, Conv2d, NearestUpsampling, ReLU, Sequential, Sigmoid, TransposeConv2d
from impl.app.course import Model

__all__ = [
    "Model",
    "Conv2d",
    "TransposeConv2d",
    "NearestUpsampling",
    "ReLU",
    "Sigmoid",
    "MSE",
    "SGD",
    "Sequential",
    "Adam",
]
