"""Schemathesis hooks for .ci/schemathesis: rules that depend on more than one
field or on the database, which a JSON Schema cannot state. Each touches only
schema-valid (positive) requests of one operation, just before they are sent,
so every phase (coverage included, which bypasses generation hooks) sees them;
requests meant to be invalid are sent as generated. And the integrations the
script seeds stay as seeded: the fuzzer finds their ids in listings and would
otherwise replace or delete them, making later order registrations fail by chance."""

import os
import re
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


def _grant_ends_after_it_starts(body):
    """`valid_until` must be after `valid_from` (default: now). Swap the two, or
    drop `valid_until` when there is nothing to swap it with."""
    until = _instant(body.get("valid_until"))
    if until is None:
        return
    start = _instant(body.get("valid_from"))
    if start is None and body.get("valid_from") is not None:
        return  # not an instant: nothing to order
    if until > (start or datetime.now(timezone.utc)):
        return
    if start is not None and start != until:
        body["valid_from"], body["valid_until"] = body["valid_until"], body["valid_from"]
    else:
        body["valid_until"] = None


def _order_names_a_registrable_integration(body):
    """An order is registered for an existing Zeno Bank or ZayPay integration:
    which ones exist is the database's business, not the schema's."""
    if isinstance(body.get("integration"), str):
        body["integration"] = os.environ["ST_ORDER_INTEGRATION"]


def _check_without_waiting(query):
    """A valid `wait` (1 to 60 s) holds a check for a customer who is not
    entitled open for that long, past the run's response time limit: the run
    asks with 0 instead, in every phase and whatever else the case varies, so
    each check answers at once (the tests cover waiting). Invalid values are
    sent as generated: they are answered 400 at once."""
    wait = query.get("wait")
    if isinstance(wait, bool) or wait is None:
        return
    # What the server reads as seconds: an optional `+`, then digits.
    if re.fullmatch(r"\+?[0-9]+", str(wait)) and 1 <= int(str(wait)) <= 60:
        query["wait"] = 0


# The endpoint URLs the server accepts (its URL_PATTERN, in the document).
ENDPOINT_URL = re.compile(
    r"^https?://[A-Za-z0-9.-]+(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$"
)


def _endpoint_url_answers_at_once(body):
    """An outbound endpoint's URL is where `test`, `resend` and the sender
    POST. A generated host name would be looked up (and, with no network here,
    time out after the 10 s an attempt may take, past the run's response time
    limit): every valid URL is pointed at a closed local port instead, which
    refuses at once. Invalid URLs are sent as generated."""
    url = body.get("url")
    if isinstance(url, str) and ENDPOINT_URL.fullmatch(url):
        body["url"] = "http://127.0.0.1:9/hooks"


FIXES = {
    "POST /v1/admin/grants": _grant_ends_after_it_starts,
    "POST /v1/orders": _order_names_a_registrable_integration,
}


SEEDED = {"st-zenofy", os.environ["ST_ORDER_INTEGRATION"]}
WRITES_AN_INTEGRATION = {"PUT /v1/admin/integrations/{id}", "DELETE /v1/admin/integrations/{id}"}


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.label in WRITES_AN_INTEGRATION and case.path_parameters:
        if case.path_parameters.get("id") in SEEDED:
            case.path_parameters["id"] += "-x"
    if case.operation.label == "GET /v1/access" and isinstance(case.query, dict):
        _check_without_waiting(case.query)
    if case.operation.label == "PUT /v1/admin/endpoints/{id}" and isinstance(case.body, dict):
        _endpoint_url_answers_at_once(case.body)
    fix = FIXES.get(case.operation.label)
    meta = case.meta
    if fix is None or meta is None or not meta.generation.mode.is_positive:
        return
    if isinstance(case.body, dict):
        fix(case.body)
