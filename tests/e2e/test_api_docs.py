"""/docs in headless Chromium: Swagger UI from our own static files shows every operation of
/openapi.json under the site's Content-Security-Policy, and asks nothing of another host."""
from __future__ import annotations


def test_the_api_docs_show_every_operation_from_our_own_files(live_server, page, requests_seen, screenshot):
    refused = []
    page.on("console", lambda message: refused.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text else None)
    page.goto(live_server.url("/docs"))
    page.wait_for_selector(".opblock")
    document = page.request.get(live_server.url("/openapi.json")).json()
    operations = sum(len(methods) for methods in document["paths"].values())
    assert page.locator(".opblock").count() == operations
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("GridAtlas")
    page.locator(".opblock-summary", has_text="/api/bookings").first.click()
    page.wait_for_selector(".opblock.is-open .responses-table")
    screenshot(page, "api_docs")
    assert refused == []
    assert live_server.only_local(requests_seen), requests_seen
