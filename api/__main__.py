"""`python -m api`: the `orders` command."""

import sys

from api.cli import main

sys.exit(main())
