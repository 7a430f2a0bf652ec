"""The reviews pages in a browser, as a reviewer uses them: the queue of held answers, one
held answer with its request, approving, editing and rejecting it (a rejection needs a
reason), and the decided reviews with their audit entries; the client then gets what was
decided. And what the server enforces whatever the browser does: roles, and a team-scoped
reviewer seeing and deciding its own team's reviews only."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import axe_violations
from tests.console.support import ConsoleKeel, console_keel, login
from tests.console.support import session_with_csrf as _session


@pytest.fixture(scope="module")
def ck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleKeel]:
    with console_keel(tmp_path_factory.mktemp("reviews"), requests=4) as ck:
        yield ck


def _hold(ck: ConsoleKeel, team: str = "alpha", text: str = "Summarise clause 9.") -> str:
    """A new answer held for review (the contracts policy holds every answer)."""
    r = ck.chat(team, "contracts", text)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _poll(ck: ConsoleKeel, review_id: str, team: str = "alpha") -> httpx.Response:
    """What the client that made the held request gets when it asks for the answer."""
    return httpx.get(f"{ck.keel.base_url}/reviews/{review_id}", timeout=30,
                     headers={"authorization": f"Bearer {ck.gateway_keys[team]}"})


def _status(ck: ConsoleKeel, review_id: str) -> str:
    review = ck.keel.run(ck.keel.state.reviews.get(review_id))
    assert review is not None
    return str(review.status)


def _key_id(ck: ConsoleKeel, key: str) -> str:
    return str(ck.keel.state.keys.authenticate(key).key_id)


def test_reviewer_approves_a_held_answer_and_sees_it_decided_with_its_audit_entry(
        page: Page, ck: ConsoleKeel) -> None:
    review_id = ck.review_ids[0]
    assert _poll(ck, review_id).status_code == 202  # the client waits for a decision
    login(page, ck.url, ck.keys["reviewer"])
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Reviews").click()
    expect(page.get_by_role("heading", level=1, name="Reviews")).to_be_visible()
    row = page.locator("main table tbody tr", has=page.get_by_role(
        "link", name=f"Open {review_id}"))
    expect(row).to_contain_text("contracts")
    expect(row).to_contain_text("alpha")
    expect(row).to_contain_text("contracts-review@")
    expect(row).to_contain_text("the policy reviews every answer")
    assert axe_violations(page) == []

    row.get_by_role("link", name=f"Open {review_id}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(review_id)
    expect(page.get_by_text("Summarise clause 7 of the supply contract.")).to_be_visible()
    held = page.locator("#held-answer").inner_text()
    assert held.strip()
    expect(page.get_by_label("Answer to release in place of the held one")).to_have_value(held)
    assert axe_violations(page) == []

    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("approved")
    expect(page.locator("dl.facts")).to_contain_text("approved")
    reviewer = f"key:{_key_id(ck, ck.keys['reviewer'])}"
    audit = page.locator("table", has=page.get_by_role("columnheader", name="Action"))
    expect(audit).to_contain_text("review.approved")
    expect(audit).to_contain_text(reviewer)
    expect(page.get_by_role("button", name="Approve", exact=True)).to_have_count(0)

    page.get_by_role("link", name="Decided reviews").click()
    decided = page.locator("main table tbody tr", has=page.get_by_role(
        "link", name=f"Open {review_id}"))
    expect(decided).to_contain_text("approved")
    expect(decided).to_contain_text(reviewer)
    expect(decided).to_contain_text("review.approved")
    assert axe_violations(page) == []

    released = _poll(ck, review_id)  # the client gets the answer the reviewer saw
    assert released.status_code == 200, released.text
    assert released.json()["choices"][0]["message"]["content"] == held


def test_reject_needs_a_reason_and_the_client_is_told_it(page: Page, ck: ConsoleKeel) -> None:
    review_id = _hold(ck)
    login(page, ck.url, ck.keys["reviewer"])
    page.goto(f"{ck.url}/reviews/{review_id}")
    page.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("alert")).to_contain_text("'reason' is required to reject")
    assert _status(ck, review_id) == "pending"
    assert axe_violations(page) == []

    page.get_by_label("Reason (required: the client is told it)").fill(
        "Quotes a clause that is not in the contract.")
    page.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("status")).to_contain_text("rejected")
    expect(page.locator("dl.facts")).to_contain_text(
        "Quotes a clause that is not in the contract.")
    expect(page.locator("table")).to_contain_text("review.rejected")

    refused = _poll(ck, review_id)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "review_rejected"
    assert "Quotes a clause that is not in the contract." in refused.json()["error"]["message"]


def test_an_edited_answer_is_what_the_client_gets(page: Page, ck: ConsoleKeel) -> None:
    review_id = _hold(ck, text="Summarise clause 12.")
    login(page, ck.url, ck.keys["reviewer"])
    page.goto(f"{ck.url}/reviews?order=newest")
    page.get_by_role("link", name=f"Open {review_id}").click()
    page.get_by_label("Answer to release in place of the held one").fill(
        "Clause 12 sets a 30-day notice period.")
    page.get_by_label("Note (optional)").fill("shortened")
    page.get_by_role("button", name="Approve edited answer").click()
    expect(page.get_by_role("status")).to_contain_text("approved with your edit")
    expect(page.get_by_role("heading", name="Answer released (edited)")).to_be_visible()
    expect(page.locator("table")).to_contain_text("review.edited")

    released = _poll(ck, review_id)
    assert released.status_code == 200, released.text
    assert released.json()["choices"][0]["message"]["content"] == \
        "Clause 12 sets a 30-day notice period."


def test_a_team_scoped_reviewer_sees_and_decides_its_own_team_only(ck: ConsoleKeel) -> None:
    ours, theirs = _hold(ck, "alpha"), _hold(ck, "beta")
    c, csrf = _session(ck, ck.team_keys["reviewer"])
    queue = c.get("/reviews", params={"order": "newest"})
    assert queue.status_code == 200
    assert ours in queue.text and theirs not in queue.text
    assert c.get(f"/reviews/{ours}").status_code == 200
    assert c.get(f"/reviews/{theirs}").status_code == 404
    refused = c.post(f"/reviews/{theirs}/decide",
                     data={"csrf": csrf, "decision": "reject", "reason": "not mine"},
                     headers={"origin": ck.url})
    assert refused.status_code == 404
    assert _status(ck, theirs) == "pending"
    # another team's name in the filter is refused too, not answered with an empty queue
    assert c.get("/reviews", params={"team": "beta"}).status_code == 404

    org_wide, token = _session(ck, ck.keys["reviewer"])
    assert theirs in org_wide.get("/reviews", params={"order": "newest"}).text
    done = org_wide.post(f"/reviews/{theirs}/decide", data={"csrf": token,
                                                            "decision": "approve"},
                         headers={"origin": ck.url}, follow_redirects=False)
    assert done.status_code == 303
    assert _status(ck, theirs) == "approved"


def test_a_viewer_cannot_decide_and_an_auditor_only_reads(ck: ConsoleKeel) -> None:
    review_id = _hold(ck)
    viewer, csrf = _session(ck, ck.keys["viewer"])
    assert viewer.get("/reviews").status_code == 403
    refused = viewer.post(f"/reviews/{review_id}/decide",
                          data={"csrf": csrf, "decision": "approve"},
                          headers={"origin": ck.url})
    assert refused.status_code == 403 and "reviewer" in refused.text
    assert _status(ck, review_id) == "pending"

    decided_id = _hold(ck)
    r = ck.admin("POST", f"/api/reviews/{decided_id}/decision",
                 json={"decision": "reject", "reason": "off topic"})
    assert r.status_code == 200, r.text
    auditor, token = _session(ck, ck.keys["auditor"])
    refused = auditor.post(f"/reviews/{review_id}/decide",
                           data={"csrf": token, "decision": "approve"},
                           headers={"origin": ck.url})
    assert refused.status_code == 403
    assert _status(ck, review_id) == "pending"
    decided = auditor.get("/governance/reviews")
    assert decided.status_code == 200
    assert decided_id in decided.text and review_id not in decided.text
    one = auditor.get(f"/governance/reviews/{decided_id}")
    assert one.status_code == 200 and "review.rejected" in one.text and "off topic" in one.text
    assert 'action="/reviews/' not in one.text  # no decision form for an auditor
