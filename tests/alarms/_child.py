"""A supervisor's alarm list in a process of its own, for the SIGKILL test.

``python -m tests.alarms._child CONFIG_JSON DATA_DIR ACK``: the lifecycle on ``DATA_DIR`` (with
the small city, its manager and a real notifier), the camera ``cam-1`` silent; with ``ACK`` set the
operator acknowledges its alarm. Prints the active alarms as JSON, then ``ready``, and runs until
killed or terminated.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from supervisor.alarms import AlarmManager
from supervisor.alarms.lifecycle import AlarmLifecycle
from supervisor.alarms.store import AlarmStore
from supervisor.model import city_from_dict
from supervisor.notify import NotificationsConfig, Notifier
from tests.model._small import small_city


def main() -> None:
    config = NotificationsConfig(**json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
    data_dir = Path(sys.argv[2])
    notifier = Notifier(config, data_dir)
    notifier.start()
    model = city_from_dict(small_city())
    lc = AlarmLifecycle(AlarmStore(data_dir / "alarms.sqlite3"), model=model, notify=notifier.submit)
    mgr = AlarmManager(model, id_for=lc.id_for, on_change=lc.on_manager_change)
    lc.manager_ack = mgr.acknowledge
    mgr.update({"cam-1"}, time.time())
    if sys.argv[3] == "1":
        lc.acknowledge(lc.active()[0].id, "alice", time.time())
    print(json.dumps([a.as_dict() for a in lc.active()]), flush=True)
    print("ready", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
