"""robocall's UUIDs (robocall.esl.client.new_uuid): random version-4 UUIDs, as uuid.uuid4()
writes them, valid where FreeSWITCH takes a UUID (origination_uuid, Job-UUID, Event-UUID)."""

from __future__ import annotations

import uuid

from robocall.esl import commands
from robocall.esl.client import new_uuid


def test_each_is_a_version_4_uuid_in_its_canonical_text() -> None:
    made = [new_uuid() for _ in range(5000)]
    for text in made:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert commands.check_uuid(text) == text
    assert len(set(made)) == len(made)


def test_every_digit_outside_the_fixed_ones_varies() -> None:
    # the random bits are spread over all positions but the version and variant digits
    made = [new_uuid().replace("-", "") for _ in range(2000)]
    for position in range(32):
        seen = {text[position] for text in made}
        if position == 12:
            assert seen == {"4"}
        elif position == 16:
            assert seen == set("89ab")
        else:
            assert len(seen) == 16, position
