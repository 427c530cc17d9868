"""``python -m n2n``: the ``n2n`` command (what ``torchrun -m n2n`` runs)."""

import sys

from .cli import main

sys.exit(main())
