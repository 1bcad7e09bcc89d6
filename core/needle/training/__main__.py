"""``python -m needle.training TASK ...``: the ``needle train`` command on its own."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
