"""``python -m condorkit``: the same as the ``condorkit`` command."""

import sys

from .cli import main

sys.exit(main())
