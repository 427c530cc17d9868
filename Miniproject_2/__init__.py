"""The EE-559 course harness imports ``Miniproject_2.model``: the blocks and ``Model``."""
