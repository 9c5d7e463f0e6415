#!/usr/bin/env python3
"""Clicks through the local console in headless Chromium (driven by
Playwright): key, send hits, flush, look up, daily job, charts, erase.
Fails on any browser console error or failed request, and saves a
screenshot.

    console_check.py URL API_KEY SCREENSHOT
"""
import os
import sys

from playwright.sync_api import sync_playwright


def main():
    url, key, screenshot = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    problems = []
    # Responses that are the point of a step (a lookup after the erasure).
    expected = set()
    with sync_playwright() as p:
        # The system's chromium when scripts/console-check found one, else
        # the Chromium `playwright install` downloaded.
        browser = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM") or None,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        page.on("console", lambda m: m.type == "error" and not (
            m.text.startswith("Failed to load resource") and any(
                e.endswith(" " + m.location.get("url", "")) for e in expected))
                and problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.on("response", lambda r: r.status >= 400 and f"{r.status} {r.url}" not in expected
                and problems.append(f"{r.status} {r.url}"))
        page.goto(url + "/")
        page.fill("#api-key", key)
        page.dispatch_event("#key-form", "change")

        # Website: the tracker snippet with this origin and the ingest key;
        # a hit sent with that key in the URL shows as a hit from a page.
        page.wait_for_function(
            "document.querySelector('#site-snippet').textContent.includes('data-key=')",
            timeout=10_000,
        )
        snippet = page.inner_text("#site-snippet")
        assert snippet.startswith(f'<script defer src="{url}/tracker.js" data-key="'), snippet
        ingest_key = snippet.split('data-key="', 1)[1].split('"', 1)[0]
        assert len(ingest_key) == 32 and ingest_key != key, snippet
        status = page.evaluate(
            """([u, k]) => fetch(u + '/hits?key=' + k, {method: 'POST',
                headers: {'content-type': 'text/plain'},
                body: JSON.stringify({clientid: 'page-visitor', pageGender: 'M'})}).then(r => r.status)""",
            [url, ingest_key])
        assert status == 202, status
        page.wait_for_function(
            "document.querySelector('#site-browser-last').textContent !== 'not seen yet'",
            timeout=10_000,
        )
        assert page.inner_text("#site-browser-count") == "1", page.inner_text("#site-browser")

        page.fill("#send-id", "browser-visitor")
        page.select_option("#send-gender", "F")
        page.fill("#send-count", "3")
        page.click("#send-btn")
        page.wait_for_selector("#send-result :text('3')")

        page.click("#flush-btn")
        page.wait_for_selector("#flush-result .okmsg")
        summary = page.inner_text("#flush-result .okmsg")
        assert summary.startswith("Every hit accepted before this call is curated and visible"), summary

        page.fill("#lookup-id", "browser-visitor")
        page.click("#lookup-btn")
        page.wait_for_selector("#lookup-gender")
        assert page.inner_text("#lookup-gender") == "F", page.inner_text("#lookup-result")
        assert page.inner_text("#lookup-hits-f") == "3"

        # The daily job for today, so today's hits are in a rollup.
        today = page.evaluate("new Date().toISOString().slice(0, 10)")
        page.fill("#daily-date", today)
        page.click("#daily-btn")
        page.wait_for_selector("#daily-result .okmsg")
        page.wait_for_selector("#split-chart rect.bar-f", state="attached")
        bars = page.eval_on_selector_all(
            "#split-chart rect.bar-f", "rs => rs.map(r => parseFloat(r.getAttribute('height')))")
        assert max(bars) > 0, bars
        # Looked up again: the visitor's chart now has today's 3 F hits.
        page.click("#lookup-btn")
        page.wait_for_function(
            """() => {
                const ts = [...document.querySelectorAll('#lookup-days rect.bar-f title')];
                return ts.length === 7 && ts[6].textContent.endsWith('F 3');
            }""",
            timeout=10_000,
        )
        # The trend charts fill as /metrics is sampled every 2 s.
        page.wait_for_function(
            "document.querySelector('#chart-lag polyline').getAttribute('points').length > 0",
            timeout=10_000,
        )
        # Erase: asks first; Cancel does nothing.
        page.click("#erase-btn")
        page.wait_for_selector("#erase-confirm")
        page.click("#erase-no")
        assert page.inner_text("#erase-result") == "", page.inner_text("#erase-result")
        page.click("#lookup-btn")
        page.wait_for_selector("#lookup-hits-f")
        assert page.inner_text("#lookup-hits-f") == "3", "cancel erased nothing"
        page.screenshot(path=screenshot, full_page=True)
        page.click("#erase-btn")
        page.click("#erase-yes")
        page.wait_for_selector("#erase-done", timeout=30_000)
        expected.add(f"404 {url}/gender/browser-visitor")
        page.click("#lookup-btn")
        page.wait_for_selector("#lookup-result .err")
        assert "unknown clientid" in page.inner_text("#lookup-result"), page.inner_text("#lookup-result")
        page.wait_for_selector("#split-chart rect.bar-f", state="attached")
        # The rollup lost the visitor's row: the daily split has no F hits left.
        page.click("#daily-btn")
        page.wait_for_selector("#daily-result .okmsg")
        page.wait_for_function(
            """() => [...document.querySelectorAll('#split-chart rect.bar-f')]
                    .every(r => parseFloat(r.getAttribute('height')) === 0)""",
            timeout=10_000,
        )
        page.screenshot(path=screenshot.replace(".png", "-erased.png"), full_page=True)
        browser.close()
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    print(f"console click-through passed; screenshot {screenshot}")


if __name__ == "__main__":
    main()
