"""Request ids the server makes: UUIDs version 7 (RFC 9562), unique, and ordered by time."""

from __future__ import annotations

import itertools
import time
import uuid

from app.context import CLIENT_REQUEST_ID, new_request_id


def test_a_made_id_is_a_uuid_version_7_with_its_time() -> None:
    before = time.time_ns() // 1_000_000
    made = new_request_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(made)
    assert str(parsed) == made  # the canonical text form
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after
    assert CLIENT_REQUEST_ID.match(made)  # a client may send it back as its own


def test_made_ids_are_unique_and_sort_by_time() -> None:
    made = []
    for _ in range(5):
        made.append([new_request_id() for _ in range(2000)])
        time.sleep(0.002)
    flat = [i for batch in made for i in batch]
    assert len(set(flat)) == len(flat)
    # Within a millisecond the order is random; across batches 2 ms apart it is time's.
    for earlier, later in itertools.pairwise(made):
        assert max(earlier) < min(later)
