"""The web console driven in a real headless browser (Debian's chromium via Playwright)
against the real stack: sign-in, every page and form, refusals, screenshots."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, ViewportSize, sync_playwright

from tests.e2e.helpers import (
    TokenFactory,
    add_member,
    bearer,
    define_role,
    grant,
    now_plus,
    publish,
    sync,
)

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
# The README's screenshots are refreshed on request only, so `make test` leaves the tree clean.
SHOTS = (
    REPO / "docs" / "console"
    if os.environ.get("PERMSTORE_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / f"permstore-console-{os.getpid()}"
)
LAPTOP: ViewportSize = {"width": 1280, "height": 860}
PHONE: ViewportSize = {"width": 390, "height": 844}


def chromium_executable() -> str:
    """Debian's chromium; installed with apt-get when missing and running as root."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.fail("the console tests need Debian's chromium: apt-get install -y chromium")
    print("[permstore] installing Debian's chromium for the console browser tests (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
        check=True,
        env=env,
        timeout=1200,
    )
    found = shutil.which("chromium")
    assert found, "apt-get installed chromium but it is not on PATH"
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless chromium for the module (no browser download: the system's own)."""
    executable = chromium_executable()
    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) with a laptop-sized page."""
    context = browser.new_context(viewport=LAPTOP)
    opened = context.new_page()
    yield opened
    context.close()


def subject_of(issue_token: TokenFactory) -> str:
    """The principal the test tokens are issued to."""
    return f"service:tests-{os.getpid()}"


def seed(api_url: str, tenant: str, token: str, me: str) -> None:
    """A small tenant: a role, nested groups, grants through each."""
    with httpx.Client(base_url=api_url, headers=bearer(token), timeout=30) as http:
        point = publish(
            http,
            [
                define_role(tenant, "editor", ["read", "write"]),
                add_member(tenant, "group:eng", "group:backend"),
                add_member(tenant, "group:backend", "user:bob"),
                add_member(tenant, "group:eng", "user:alice"),
                add_member(tenant, "group:eng", me),
                grant(tenant, "group:eng", "doc:acme/eng/*", "read", reason="TICKET-1"),
                grant(
                    tenant,
                    me,
                    "doc:acme/eng/spec-1",
                    "role:editor",
                    expires_at=now_plus(86400 * 30),
                ),
                grant(tenant, "user:carol", "repo:payments", "deploy"),
            ],
        )
        sync(http, tenant, point)


def sign_in(page: Page, api_url: str, token: str, tenant: str = "") -> None:
    """Paste the token into the sign-in form."""
    page.goto(f"{api_url}/console/")
    assert "/console/signin" in page.url
    page.get_by_label("Permstore token").fill(token)
    if tenant:
        page.get_by_label("Tenant").fill(tenant)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/access")


def shot(page: Page, name: str) -> None:
    """Save a full-page screenshot of the current page under docs/console/."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def submit(page: Page, button: Locator) -> None:
    """Click a form's button and wait for the page it leads to."""
    with page.expect_navigation():
        button.click()


def change(page: Page, kind: str, reason: str, **fields: str) -> None:
    """Fill and submit one form of the Changes page."""
    form = page.locator(f"#form-{kind}")
    for name, value in fields.items():
        form.locator(f"[name={name}]").fill(value)
    form.locator("[name=reason]").fill(reason)
    submit(page, form.get_by_role("button"))


def test_console_pages_and_forms(
    page: Page, api_url: str, tenant: str, issue_token: TokenFactory
) -> None:
    token = issue_token(tenant, "check,write,audit")
    me = subject_of(issue_token)
    seed(api_url, tenant, token, me)

    page.goto(f"{api_url}/console/signin")
    shot(page, "signin")
    sign_in(page, api_url, token)

    # The session cookie: HttpOnly, SameSite=Strict, scoped to /console, not the token.
    [cookie] = [c for c in page.context.cookies() if c["name"] == "permstore_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert token not in cookie["value"] and token.split(".")[1] not in cookie["value"]
    assert page.evaluate("document.cookie") == ""
    token_expiry = time.time() + 3600  # the fixture's tokens live one hour
    assert abs(cookie["expires"] - token_expiry) < 120, (cookie["expires"], token_expiry)

    # My access: both paths, the role's actions, the expiry, searchable.
    body = page.locator("main").inner_text()
    assert "doc:acme/eng/*" in body and "member of group:eng" in body
    assert "doc:acme/eng/spec-1" in body and "via role editor" in body
    assert "Last use is shown" not in body  # the token holds audit: the column is filled
    page.get_by_label("Search").fill("write")
    submit(page, page.get_by_role("button", name="Search"))
    rows = page.locator("tbody tr")
    assert rows.count() == 1 and "spec-1" in rows.inner_text()
    page.goto(f"{api_url}/console/access")
    shot(page, "access")

    # Can ...? allowed with every path; denied with the nearest grants.
    page.goto(f"{api_url}/console/can")
    page.get_by_label("Principal").fill("user:bob")
    page.get_by_label("Action").fill("read")
    page.get_by_label("Resource").fill("doc:acme/eng/spec-2")
    submit(page, page.get_by_role("button", name="Check"))
    verdict = page.locator("#verdict").inner_text()
    assert verdict.startswith("Yes")
    assert "group:backend -> group:eng" in page.locator(".answer").inner_text()
    shot(page, "can")
    page.get_by_label("Action").fill("write")
    submit(page, page.get_by_role("button", name="Check"))
    assert page.locator("#verdict").inner_text().startswith("No grant matches")
    nearest = page.locator(".answer").inner_text()
    assert "read" in nearest and "doc:acme/eng/*" in nearest
    page.get_by_label("Resource").fill("doc:*")
    submit(page, page.get_by_role("button", name="Check"))
    assert "resource must be" in page.locator("#resource-error").inner_text()

    # Who can, expanded through nested groups, paged.
    page.goto(f"{api_url}/console/who?resource=doc:acme/eng/spec-1&action=read&limit=2")
    first = page.locator("tbody").inner_text()
    submit(page, page.get_by_role("link", name="Next page"))
    second = page.locator("tbody").inner_text()
    everyone = first + second
    for who in ("user:alice", "user:bob", me):
        assert who in everyone
    assert "group:eng" not in page.locator("tbody td[data-label=Principal]").all_inner_texts()
    page.goto(f"{api_url}/console/who?resource=doc:acme/eng/spec-1")
    shot(page, "who")

    # Principals and groups: members direct and nested, a principal's groups, roles.
    page.goto(f"{api_url}/console/directory?group=group:eng&principal=user:bob")
    members = page.locator("#members").inner_text()
    assert "user:alice" in members and "nested, through group:backend" in members
    groups = page.locator("#groups").inner_text()
    assert "group:backend" in groups and "group:eng" in groups
    assert "read, write" in page.locator("#roles").inner_text()
    shot(page, "directory")

    # Changes: a field error, a missing reason, then a grant that shows up everywhere.
    page.goto(f"{api_url}/console/changes")
    change(page, "grant", "", principal="alice", resource="report:q1", permission="read")
    page.locator("#grant-principal-error").wait_for()
    assert "user:<id>" in page.locator("#grant-principal-error").inner_text()
    page.locator("#grant-reason-error").wait_for()
    assert page.locator("#grant-resource-error").count() == 0
    change(page, "grant", "TICKET-42 quarterly report", principal=me, permission="read")
    assert "applied" in page.locator("#published").inner_text()
    shot(page, "changes")
    page.goto(f"{api_url}/console/access?q=report")
    assert "report:q1" in page.locator("main").inner_text()

    # Audit: the grant with its actor and reason, the weekly plot, a point-in-time answer.
    page.goto(f"{api_url}/console/audit")
    page.get_by_label("Principal", exact=True).first.fill(me)
    submit(page, page.get_by_role("button", name="Filter"))
    timeline = page.locator("#timeline").inner_text()
    assert "grant read on report:q1" in timeline and "TICKET-42 quarterly report" in timeline
    assert me in timeline
    assert page.locator("figure.plot svg rect.bar").count() >= 1
    page.goto(
        f"{api_url}/console/audit?principal={me}&at_principal=user:bob&at_action=read"
        f"&at_resource=doc:acme/eng/spec-1&at={now_plus(0)}"
    )
    assert page.locator("#pit-answer").inner_text().startswith("Yes")
    shot(page, "audit")

    # Revoke (from the Changes form while findings are not in this build).
    page.goto(f"{api_url}/console/changes")
    change(page, "revoke", "TICKET-43 done", principal=me, resource="report:q1", permission="read")
    assert "applied" in page.locator("#published").inner_text()
    page.goto(f"{api_url}/console/access?q=report")
    assert "report:q1" not in page.locator("main").inner_text()

    # Findings: a grant nobody has used is listed with its evidence; selecting it, giving a
    # reason and confirming revokes it, recorded with the reason.
    page.goto(f"{api_url}/console/changes")
    change(page, "grant", "TICKET-44", principal=me, resource="report:q2", permission="read")
    assert "applied" in page.locator("#published").inner_text()
    page.goto(f"{api_url}/console/findings?days=0&kind=grant")
    page.get_by_role("heading", name="Unused access").wait_for()
    assert page.locator("#findings-unavailable").count() == 0
    row = page.locator("#findings tbody tr").filter(has_text="report:q2")
    assert row.count() == 1, page.locator("main").inner_text()
    assert "never" in row.inner_text()
    shot(page, "findings")
    row.get_by_role("checkbox").check()
    page.locator("#revoke-reason").fill("unused 90 days")
    # The confirmation is required: the browser refuses the form until it is ticked.
    page.get_by_role("button", name="Revoke selected").click()
    assert "/console/findings" in page.url and page.locator("#confirm").is_visible()
    assert "revocation(s) recorded" not in page.locator("main").inner_text()
    page.locator("#confirm").check()
    submit(page, page.get_by_role("button", name="Revoke selected"))
    assert "1 revocation(s) recorded" in page.locator("main").inner_text()
    page.goto(f"{api_url}/console/access?q=report")
    assert "report:q2" not in page.locator("main").inner_text()
    page.goto(f"{api_url}/console/audit?resource=report:q2")
    timeline = page.locator("#timeline").inner_text()
    assert "revoke read on report:q2" in timeline and "unused" in timeline
    # Without the confirmation the server refuses too (a form posted past the browser's check).
    page.goto(f"{api_url}/console/findings")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    recommendation = json.dumps(
        {"type": "revoke", "principal": me, "resource": "report:q1", "permission": "read"}
    )
    unconfirmed = page.request.post(
        f"{api_url}/console/findings/revoke",
        form={"csrf": csrf, "finding": recommendation, "reason": "unused 90 days"},
    )
    assert unconfirmed.status == 422

    # Phone layout of My access.
    page.set_viewport_size(PHONE)
    page.goto(f"{api_url}/console/access")
    shot(page, "access-phone")

    # Sign-out ends the session.
    page.set_viewport_size(LAPTOP)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/signin**")
    page.goto(f"{api_url}/console/access")
    assert "/console/signin" in page.url


def test_console_security_headers(page: Page, api_url: str) -> None:
    response = page.goto(f"{api_url}/console/signin")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src" not in csp
    assert "'unsafe-inline'" not in csp and "style-src 'self'" in csp
    assert response.headers["x-frame-options"] == "DENY"


def test_bad_token_is_refused_at_the_field(page: Page, api_url: str) -> None:
    page.goto(f"{api_url}/console/signin")
    page.get_by_label("Permstore token").fill("not-a-token")
    submit(page, page.get_by_role("button", name="Sign in"))
    assert "not a valid token" in page.locator("#token-error").inner_text()
    page.goto(f"{api_url}/console/access")
    assert "/console/signin" in page.url


def test_csrf_and_scope_refusals(
    page: Page, api_url: str, tenant: str, issue_token: TokenFactory
) -> None:
    sign_in(page, api_url, issue_token(tenant, "check"))
    # A check-only sign-in may read, not audit or change.
    for path in ("audit", "changes", "findings"):
        response = page.goto(f"{api_url}/console/{path}")
        assert response is not None and response.status == 403, path
        assert "scope" in page.locator("main").inner_text()
    page.goto(f"{api_url}/console/access")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    event = {"type": "grant", "principal": "user:x", "resource": "a:b", "permission": "read"}
    refused = page.request.post(
        f"{api_url}/console/changes", form={**event, "csrf": csrf, "reason": "r"}
    )
    assert refused.status == 403 and "write scope" in refused.text()

    # With the write scope, a form post without the session's CSRF token is refused.
    page.context.clear_cookies()
    sign_in(page, api_url, issue_token(tenant, "check,write"))
    forged = page.request.post(
        f"{api_url}/console/changes", form={**event, "csrf": "forged", "reason": "r"}
    )
    assert forged.status == 403 and "CSRF" in forged.text()
    missing = page.request.post(f"{api_url}/console/changes", form={**event, "reason": "r"})
    assert missing.status == 403
    page.goto(f"{api_url}/console/changes")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    elsewhere = page.request.post(
        f"{api_url}/console/changes",
        form={**event, "csrf": csrf, "reason": "r"},
        headers={"Origin": "http://attacker.example"},
    )
    assert elsewhere.status == 403 and "CSRF" in elsewhere.text()


def test_other_tenants_are_unreachable(
    page: Page, api_url: str, tenant: str, issue_token: TokenFactory
) -> None:
    other = f"{tenant}x"
    seed(api_url, other, issue_token(other, "check,write,audit"), subject_of(issue_token))
    sign_in(page, api_url, issue_token(tenant, "check,write,audit"))
    page.goto(f"{api_url}/console/who?resource=doc:acme/eng/spec-1")
    assert "Nobody may act" in page.locator("main").inner_text()
    page.goto(f"{api_url}/console/audit")
    assert "No recorded event" in page.locator("main").inner_text()
    # The session's tenant cannot be switched by a tenant-bound token.
    csrf = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    moved = page.request.post(f"{api_url}/console/tenant", form={"csrf": csrf, "tenant": other})
    assert moved.status == 422 and f"tenant {tenant} only" in moved.text()
    # Nor chosen at sign-in.
    page.context.clear_cookies()
    page.goto(f"{api_url}/console/signin")
    page.get_by_label("Permstore token").fill(issue_token(tenant, "check"))
    page.get_by_label("Tenant").fill(other)
    submit(page, page.get_by_role("button", name="Sign in"))
    assert "only" in page.locator("#tenant-error").inner_text()
    # A tampered session cookie is no session at all.
    page.context.add_cookies(
        [{"name": "permstore_console", "value": "gAAAAAforged", "url": f"{api_url}/console/"}]
    )
    page.goto(f"{api_url}/console/access")
    assert "/console/signin" in page.url


def test_operator_picks_a_tenant_and_link_signs_in_once(
    page: Page, api_url: str, tenant: str, issue_token: TokenFactory
) -> None:
    token = issue_token("*", "check,write,audit,admin", ttl=timedelta(hours=1))
    link = f"{api_url}/console/signin/link?token={token}&tenant={tenant}"
    page.goto(link)
    page.wait_for_url("**/console/access")
    assert f"tenant {tenant}" in page.locator(".who").inner_text()
    page.get_by_label("Work on tenant").fill(f"{tenant}y")
    submit(page, page.get_by_role("button", name="Switch"))
    assert f"tenant {tenant}y" in page.locator(".who").inner_text()
    page.context.clear_cookies()
    response = page.goto(link)
    assert response is not None and response.status == 401
    assert "already used" in page.locator("main").inner_text()
