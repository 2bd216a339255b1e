"""Ids are bounded at the door (issue 23): a 60,000-character camera id answered 502
RESOURCE_EXHAUSTED from the ingest service; now every path and id-like query parameter of every
route is refused with 422 before anything uses it, and the answer does not echo it."""

import pytest

from tests.support.platform import Platform

pytestmark = pytest.mark.e2e
HUGE = "c" * 60_000


def test_oversized_ids_are_refused_at_the_door(platform: Platform) -> None:
    platform.start(["ingest", "gateway"])
    operator, admin = platform.client("operator"), platform.admin()
    for client, method, path in [
        (operator, "GET", f"/api/v1/cameras/{HUGE}"),
        (operator, "GET", f"/api/v1/cameras/{HUGE}/segments"),
        (admin, "POST", f"/api/v1/users/{'u' * 129}/revoke-sessions"),
        (operator, "GET", f"/api/v1/requisitions/{'r' * 5000}"),
    ]:
        answer = client.request(method, path)
        assert answer.status_code == 422, (path[:60], answer.status_code, answer.text[:200])
        detail = answer.json()["detail"]
        assert "at most 128" in detail and len(answer.text) < 300, detail
    listed = operator.get("/api/v1/cameras/demo-1/segments", params={"camera_id": HUGE})
    assert listed.status_code == 422 and "query parameter 'camera_id'" in listed.json()["detail"]
    # At the bound, an id is looked up as usual: unknown, not refused.
    assert operator.get(f"/api/v1/cameras/{'c' * 128}").status_code == 404
    assert operator.get("/api/v1/cameras/demo-1").status_code == 200
