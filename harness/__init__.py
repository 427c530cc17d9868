"""The comparison tools (layer 3): everything that sets blocks beside torch.

- :mod:`harness.parity`: tolerances and the comparison of one quantity with torch's, shared by
  the project's own suite (``tests/``) and the check command.
- :mod:`harness.check`: ``n2n check``, the same engine pointed at anybody's blocks.
"""
