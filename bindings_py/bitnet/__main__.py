"""``python -m bitnet``: the ``bitnet`` command line (see bitnet.cli)."""

import sys

from .cli import main

sys.exit(main())
