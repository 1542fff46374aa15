"""``python -m seglib``: the command line (:mod:`seglib.cli`)."""

import sys

from seglib.cli import main

sys.exit(main())
