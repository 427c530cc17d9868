"""Layer 2, the Noise2Noise application built on the impl blocks: data, noise, the training loop,
run state and checkpoints, inference, tiling, metrics, evaluation, the course Model API.

Unlike the blocks, this layer may use any library (numpy, scikit-image, matplotlib, ``torch.load``,
``torch.rand`` ...) but never ``torch.nn``, ``torch.autograd`` or ``torch.optim``
(``tests/test_rule.py``), and it imports nothing from the comparison tools (:mod:`harness`) or
the CLI (:mod:`n2n`) above it (``tests/test_layers.py``).
"""
