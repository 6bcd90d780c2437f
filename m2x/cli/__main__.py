"""`python -m m2x.cli` is the `m2x` command."""

import sys

from m2x.cli.main import main

sys.exit(main())
