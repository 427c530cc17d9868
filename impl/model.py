"""The EE-559 Miniproject 2 interface: ``Model`` trained with the impl blocks, and the course's names.

``Model()`` builds the course network (:func:`impl.models.course_network`, nearest upsampling)
with impl's Adam (lr 5e-3). ``load_pretrained_model()`` loads ``bestmodel.pth`` shipped next to this
file; ``train(train_input, train_target, num_epochs)`` and ``predict(test_input)`` take N x 3 x H x W
images, uint8 or float on the 0-255 scale; ``predict`` returns float on 0-255 of the same shape for
any H and W, on the input's device (CPU or CUDA).

This file obeys the blocks' rule (``tests/test_rule.py``): everything that needs other torch
functions (loading files, random permutations, padding) lives in :mod:`impl.app`.

Example:
    >>> model = Model()
    >>> model.load_pretrained_model()
    >>> denoised = model.predict(noisy)  # noisy: N x 3 x H x W uint8
"""

from __future__ import annotations

from pathlib import Path

from impl import MSE, SGD, Adam, Conv2d, NearestUpsampling, ReLU, Sequential, Sigmoid, TransposeConv2d
from impl.app.api import CourseModel
from impl.app.backend import ImplBackend

BESTMODEL = Path(__file__).parent / "bestmodel.pth"
#: the pretrained U-Net (:func:`impl.models.unet`), the default of ``n2n denoise``
UNET_MODEL = Path(__file__).parent / "unet.pth"


class Model(CourseModel):
    """The course network trained with the impl blocks (see :class:`impl.app.api.CourseModel`)."""

    def __init__(self) -> None:
        super().__init__(ImplBackend, BESTMODEL)


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
