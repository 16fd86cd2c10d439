"""Schemathesis hooks for .ci/schemathesis: only rules JSON Schema cannot state."""

from datetime import datetime, timezone

import schemathesis


def _instant(value):
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@schemathesis.hook("map_body").apply_to(name="POST /v1/admin/grants")
def grant_ends_after_it_starts(context, body):
    """A grant's `valid_until` must be after its `valid_from` (default: now): a
    rule between two fields. Bodies that break it only there are put in order
    (the two swapped, or `valid_until` dropped); everything else is left as generated."""
    if not isinstance(body, dict):
        return body
    until = _instant(body.get("valid_until"))
    if until is None:
        return body
    start = _instant(body.get("valid_from")) if body.get("valid_from") is not None else None
    if start is None and body.get("valid_from") is not None:
        return body  # valid_from is itself malformed: nothing to order
    if until > (start or datetime.now(timezone.utc)):
        return body
    body = dict(body)
    if start is not None and start != until:
        body["valid_from"], body["valid_until"] = body["valid_until"], body["valid_from"]
    else:
        body["valid_until"] = None
    return body
