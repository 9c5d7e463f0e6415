#!/usr/bin/env python3
"""The tracker in a real browser (SPEC 18): headless Chromium, driven by
Playwright, loads pages served from another origin (another loopback port)
whose tag is `<script defer src="API/tracker.js" data-key=INGEST ...>`,
views three pages and one `history.pushState`, goes offline for one hit and
back, closes the page; then `GET /gender` with the read key must show
exactly those hits for the script's visitor id, each counted once.

Also checked: the hits travel without a preflight (no OPTIONS request) and
with the key in the URL only; no console error, no page error.

    tracker_check.py API_URL ADMIN_KEY INGEST_KEY READ_KEY PAGE_PORT
"""
import http.server
import json
import os
import sys
import threading
import urllib.request

from playwright.sync_api import sync_playwright

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<script defer src="{api}/tracker.js" data-key="{key}" data-page-gender="{gender}"></script>
</head><body><h1>{title}</h1><a href="/{next}.html">next</a></body></html>
"""

# (page, its gender): three page loads; the single-page view is F.
PAGES = [("one", "F"), ("two", "M"), ("three", "F")]


def serve_pages(port, api, key):
    pages = {}
    for i, (name, gender) in enumerate(PAGES):
        following = PAGES[(i + 1) % len(PAGES)][0]
        pages[f"/{name}.html"] = PAGE.format(title=name, api=api, key=key, gender=gender, next=following)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/favicon.ico":  # asked by the browser, not the test's concern
                self.send_response(204)
                self.end_headers()
                return
            body = pages.get(self.path.split("?")[0])
            self.send_response(200 if body else 404)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write((body or "not found").encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def call(method, url, key, body=None):
    request = urllib.request.Request(url, method=method, data=body, headers={"x-api-key": key})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def main():
    api, admin_key, ingest_key, read_key, page_port = sys.argv[1].rstrip("/"), *sys.argv[2:5], int(sys.argv[5])
    site = f"http://127.0.0.1:{page_port}"
    pages = serve_pages(page_port, api, ingest_key)
    problems, hit_requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM") or None,
            headless=True,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context()
        page = context.new_page()
        # A send attempted while offline fails by design (and is retried).
        page.on("console", lambda m: m.type == "error" and "ERR_INTERNET_DISCONNECTED" not in m.text
                and problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: "/hits" in r.url and hit_requests.append(
            (r.method, r.url, r.headers.get("x-api-key"), r.headers.get("content-type"))))

        def accepted(action):
            """Runs `action` and waits for the tracker's 202."""
            with page.expect_response(lambda r: "/hits?key=" in r.url and r.status == 202, timeout=30_000):
                action()

        accepted(lambda: page.goto(f"{site}/one.html"))
        visitor = page.evaluate("localStorage.getItem('gs_vid')")
        assert visitor and len(visitor) == 32, visitor
        accepted(lambda: page.click("a"))  # two.html

        # Offline: the single-page view is queued, not lost ...
        context.set_offline(True)
        page.evaluate("""() => {
            document.querySelector('script[data-key]').setAttribute('data-page-gender', 'F');
            history.pushState({}, '', '/spa-view');
        }""")
        queued = page.evaluate("JSON.parse(localStorage.getItem('gs_q'))")
        assert len(queued) == 1 and queued[0]["pageGender"] == "F" and queued[0]["hitid"], queued
        # ... and sent when the browser is back online.
        accepted(lambda: context.set_offline(False))
        assert page.evaluate("JSON.parse(localStorage.getItem('gs_q')).length") == 0

        accepted(lambda: page.goto(f"{site}/three.html"))
        assert page.evaluate("localStorage.getItem('gs_vid')") == visitor, "one visitor id per browser"
        page.close(run_before_unload=True)
        context.close()
        browser.close()
    pages.shutdown()

    assert not problems, problems
    assert hit_requests, "the tracker sent nothing"
    for method, url, header_key, content_type in hit_requests:
        assert method == "POST", f"{method} {url}: a preflight or another method"
        assert url.startswith(f"{api}/hits?key={ingest_key}"), url
        assert header_key is None, "the key travels in the URL only"
        assert content_type is None or content_type.startswith("text/plain"), content_type

    status, report = call("POST", f"{api}/admin/flush", admin_key)
    assert status == 200, report
    status, profile = call("GET", f"{api}/gender/{visitor}", read_key)
    assert status == 200, profile
    # Three pages (F, M, F) and the single-page view (F), each counted once.
    assert profile["hits"] == {"M": 1, "F": 3}, profile
    # The ingest key the page holds cannot read it back.
    status, refused = call("GET", f"{api}/gender/{visitor}", ingest_key)
    assert status == 403 and refused["required_scope"] == "read", (status, refused)
    print(f"tracker-check: ok: visitor {visitor}: {profile['hits']} from {len(hit_requests)} request(s), no preflight")


if __name__ == "__main__":
    main()
