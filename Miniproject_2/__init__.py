"""The EE-559 course harness imports ``Miniproject_2.model``; it is :mod:`impl.model`."""
