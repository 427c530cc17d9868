"""The EE-559 Miniproject 2 ``Model``: the course network trained with the impl blocks.

``Model()`` builds the course network (:func:`impl.models.course_network`, nearest upsampling)
with impl's Adam (lr 5e-3). ``load_pretrained_model()`` loads ``impl/bestmodel.pth``, shipped in
the package; ``train(train_input, train_target, num_epochs)`` and ``predict(test_input)`` take
N x 3 x H x W images, uint8 or float on the 0-255 scale; ``predict`` returns float on 0-255 of
the same shape for any H and W, on the input's device (CPU or CUDA). The course imports it as
``Miniproject_2.model.Model``.

Example:
    >>> model = Model()
    >>> model.load_pretrained_model()
    >>> denoised = model.predict(noisy)  # noisy: N x 3 x H x W uint8
"""

from __future__ import annotations

from pathlib import Path

import impl

from .api import CourseModel
from .backend import ImplBackend

BESTMODEL = Path(impl.__file__).parent / "bestmodel.pth"
#: the pretrained U-Net (:func:`impl.models.unet`), the default of ``n2n denoise``
UNET_MODEL = Path(impl.__file__).parent / "unet.pth"


class Model(CourseModel):
    """The course network trained with the impl blocks (see :class:`impl.app.api.CourseModel`)."""

    def __init__(self) -> None:
        super().__init__(ImplBackend, BESTMODEL)
