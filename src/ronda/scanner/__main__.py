"""``python -m ronda.scanner TARGET...``: the same as ``ronda scan``, without the rest of the CLI's imports."""

import sys

from ronda.scanner.console import main

sys.exit(main())
