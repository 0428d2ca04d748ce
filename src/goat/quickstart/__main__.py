"""``python -m goat.quickstart``: see :mod:`goat.quickstart.run`."""

import sys

from goat.quickstart.run import main

sys.exit(main())
