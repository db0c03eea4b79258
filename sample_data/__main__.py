"""``python -m sample_data``: see :mod:`sample_data.cli`."""

import sys

from sample_data.cli import main

sys.exit(main())
