"""Checks for the schemathesis run in .ci/run: no request may make the gateway fail.

Field errors are part of Tandem's contract (a denied field answers `null` with `FORBIDDEN`
at its path), so schemathesis' own GraphQL check, which counts every field error as a
server failure, is replaced by this one: no 5xx status, no `INTERNAL` error, and every
error carries an `extensions.code` a client can act on.
"""

import schemathesis


@schemathesis.check
def no_server_failure(ctx, response, case):
    if response.status_code >= 500:
        raise AssertionError(f"HTTP {response.status_code}: {response.text[:500]}")
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"not JSON (HTTP {response.status_code}): {response.text[:500]}")
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if code is None:
            raise AssertionError(f"an error without extensions.code: {error}")
        if code == "INTERNAL":
            raise AssertionError(f"an internal error: {error}")
