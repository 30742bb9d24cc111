"""What the commands do not load until they need it: the Kafka client (110-150 ms to import) only
when a relay runs."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import REPO_ROOT


def test_the_service_starts_without_the_kafka_client() -> None:
    check = (
        "import sys, api.wiring.cli, api.wiring.bootstrap, api.wiring.app\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'aiokafka')\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", check], cwd=REPO_ROOT, check=True, timeout=60)
