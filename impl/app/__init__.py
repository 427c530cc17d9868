"""The Noise2Noise application built on the impl blocks: data, noise, training, evaluation, report, CLI.

Unlike the blocks, this layer may use any library (numpy, scikit-image, matplotlib, ``torch.load``,
``torch.rand`` ...) but never ``torch.nn``, ``torch.autograd`` or ``torch.optim``
(``tests/test_rule.py``). The one exception is the comparison path: :mod:`impl.app.report` runs the
torch.nn twin from :mod:`reference.model`.

Modules, one concern each: :mod:`~impl.app.images` (read/write files), :mod:`~impl.app.data`
(built-in images, split, crops, folders, course files), :mod:`~impl.app.noise`,
:mod:`~impl.app.metrics`, :mod:`~impl.app.checkpoint`, :mod:`~impl.app.tiling`,
:mod:`~impl.app.backend` (one training step over impl blocks), :mod:`~impl.app.loop` (the loop),
:mod:`~impl.app.runfile` (run state, checkpoint and model formats), :mod:`~impl.app.rundir` (run
folder, lock, log), :mod:`~impl.app.train` (runs on disk, models loaded), :mod:`~impl.app.limits`
(memory estimates),
:mod:`~impl.app.api` (the course Model API), :mod:`~impl.app.evaluate`, :mod:`~impl.app.report`,
:mod:`~impl.app.cli`.
"""
