"""Exception classes of impl.

torch signals a bad input tensor with ``RuntimeError`` while Python code usually raises
``ValueError``/``TypeError``. Our classes derive from both, so ``except RuntimeError`` written
for torch.nn keeps working and so does the Pythonic ``except ValueError``.
"""


class ShapeError(ValueError, RuntimeError):
    """A tensor's rank or size does not fit the layer (torch raises RuntimeError here)."""


class DTypeError(TypeError, RuntimeError):
    """A tensor's dtype or device does not fit the layer (torch raises RuntimeError here)."""


class OutputPaddingError(ValueError, RuntimeError):
    """``output_padding`` not smaller than stride or dilation (torch: RuntimeError at forward)."""


class UnknownModeError(ValueError, NotImplementedError):
    """An interpolation mode that is not implemented (torch: NotImplementedError)."""


class StateDictError(ValueError, RuntimeError):
    """A state dict with missing, unexpected or mis-shaped keys (torch: RuntimeError)."""
