"""`python -m examples.inventory`: the inventory consumer."""

import asyncio

from examples.inventory.service import main

asyncio.run(main())
