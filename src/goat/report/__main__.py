"""``python -m goat.report``: see :mod:`goat.report.table`."""

import sys

from goat.report.table import main

sys.exit(main())
