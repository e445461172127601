"""`python -m polystream …`: the `polystream` command, for environments without its script."""

import sys

from .cli import main

sys.exit(main())
