"""A notifier in a process of its own, for the SIGKILL test.

``python -m tests.notify._child CONFIG_JSON DATA_DIR EVENTS_JSON``: starts the notifier, submits
the events (keyword arguments of ``tests.notify.conftest.event``), prints ``ready`` and runs
until killed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from supervisor.notify import NotificationsConfig, Notifier
from tests.notify.conftest import event


def main() -> None:
    config = NotificationsConfig(**json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
    notifier = Notifier(config, Path(sys.argv[2]))
    notifier.start()
    for spec in json.loads(sys.argv[3]):
        notifier.submit(event(**spec))
    print("ready", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
