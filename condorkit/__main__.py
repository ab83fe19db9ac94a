"""``python -m condorkit``: the same as the ``condorkit`` command."""

import sys

from condorkit.cli import main

sys.exit(main())
