"""The inbox between the network thread and the pipeline: batches out, a bound on what waits."""

from __future__ import annotations

import threading
import time

from supervisor.ingest.mqtt import Inbox


def _msgs(n: int, start: int = 0) -> list[tuple[str, bytes, int, int, float]]:
    return [("t", b"x", start + i, 1, 0.0) for i in range(n)]


def test_take_hands_over_in_order_and_in_batches() -> None:
    box = Inbox()
    box.put_many(_msgs(7))
    box.put(("t", b"x", 7, 1, 0.0))
    assert [m[2] for m in box.take(5)] == [0, 1, 2, 3, 4]
    assert [m[2] for m in box.take(5)] == [5, 6, 7]
    assert box.take(5) == [] and box.total == 8


def test_an_unbounded_inbox_always_has_room() -> None:
    box = Inbox()
    box.put_many(_msgs(50_000))
    assert box.wait_room(0.0) and box.full_waits == 0


def test_a_full_inbox_makes_the_producer_wait_until_the_consumer_takes() -> None:
    box = Inbox(max_items=100)
    box.put_many(_msgs(100))
    assert not box.wait_room(0.01) and box.full_waits == 1
    taken: list[int] = []

    def consumer() -> None:
        time.sleep(0.05)
        taken.extend(m[2] for m in box.take(30))

    t = threading.Thread(target=consumer)
    t.start()
    assert box.wait_room(5.0), "the take woke the producer"
    t.join()
    assert taken == list(range(30)) and len(box) == 70
