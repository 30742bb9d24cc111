"""`python -m api`: the `orders` command."""

import sys

from api.wiring.cli import main

sys.exit(main())
