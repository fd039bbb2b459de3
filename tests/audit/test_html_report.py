"""`-f html`: one self-contained page, rendered by a real headless browser (Debian's chromium).

Every run maps every host name to a loopback server of the test's own
(`--host-resolver-rules`), so any fetch the page attempted, to any host, would land
there: the report's runs must leave it untouched, and a control page that does fetch
shows the trap catches one.
"""
import http.server
import json
import re
import shutil
import subprocess
import threading
from collections import Counter

import pytest

from hardrun.audit.findings import Finding, Report
from hardrun.audit.formats.html import render_html

PAYLOAD = "<script>document.body.setAttribute('data-pwned','1')</script>"
DOCKERFILE = f'FROM ubuntu\nRUN sudo echo "{PAYLOAD}"\nUSER root\n'
COMPOSE = ("services:\n  web:\n    image: nginx:1.27\n    privileged: true\n"
           "    # hardrun ignore=HR2007 reason=\"the host's network is the point\"\n"
           "    network_mode: host\n")


class _Trap(http.server.BaseHTTPRequestHandler):
    requests: list = []

    def do_GET(self):   # noqa: N802 (the http.server API)
        _Trap.requests.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def trap():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Trap)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _chromium(trap, url: str, *extra) -> subprocess.CompletedProcess:
    browser = shutil.which("chromium")
    assert browser, "chromium is not installed (scripts/setup.sh --test installs it)"
    port = trap.server_address[1]
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps",
         # the browser's own clock and service requests, which are not the page's
         "--disable-features=NetworkTimeServiceQuerying,MediaRouter,Translate,OptimizationHints",
         f"--host-resolver-rules=MAP * 127.0.0.1:{port}",
         "--window-size=1200,1600", *extra, url],
        capture_output=True, text=True, timeout=120)


def _dom(trap, path, fragment="") -> str:
    before = len(_Trap.requests)
    result = _chromium(trap, f"file://{path}{fragment}", "--dump-dom")
    assert result.returncode == 0, result.stderr
    assert _Trap.requests[before:] == []      # nothing fetched, from any host
    return result.stdout


@pytest.fixture(scope="module")
def audited(tmp_path_factory, trap):
    from tests.helpers import run_hardrun
    repo = tmp_path_factory.mktemp("html")
    (repo / "Dockerfile").write_text(DOCKERFILE)
    (repo / "compose.yaml").write_text(COMPOSE)
    html = run_hardrun("audit", "-f", "html", "-o", "report.html", cwd=repo)
    assert html.returncode == 1 and html.stdout == "", html.stderr
    report = json.loads(run_hardrun("audit", "-f", "json", cwd=repo).stdout)
    return repo, report, _dom(trap, repo / "report.html")


def _count(dom: str, name: str) -> int:
    return int(re.search(rf'id="count-{name}" data-count="(\d+)"', dom).group(1))


def test_counts_in_the_page_equal_the_json_report(audited):
    _, report, dom = audited
    findings = report["findings"]
    open_ = Counter(f["severity"] for f in findings if not f["suppressed"])
    assert open_["error"] and open_["warning"]
    for severity in ("error", "warning", "info"):
        assert _count(dom, severity) == open_[severity]
    assert _count(dom, "suppressed") == sum(f["suppressed"] for f in findings) == 1
    assert _count(dom, "total") == len(findings)
    assert len(re.findall(r'class="finding[ "]', dom)) == len(findings)
    assert len(re.findall(r'class="finding hidden"', dom)) == 1     # the suppressed one
    # the script ran: it counted the findings it shows (the open ones, by default)
    assert re.search(r'id="shown">(\d+)<', dom).group(1) == str(sum(open_.values()))


def test_findings_are_grouped_by_file_with_their_lines(audited):
    _, report, dom = audited
    assert re.findall(r'<section class="file" data-path="([^"]+)"', dom) == ["Dockerfile", "compose.yaml"]
    assert '<span class="ln">3</span>USER root</pre>' in dom
    assert '<span class="ln">4</span>    privileged: true</pre>' in dom


def test_practice_summary_and_chart(audited):
    _, report, dom = audited
    practices = Counter(f["practice"] for f in report["findings"] if not f["suppressed"])
    rows = re.findall(r'<tr data-practice="([^"]+)">', dom)
    assert sorted(rows) == sorted(practices)
    chart = re.search(r'<svg id="chart".*?</svg>', dom).group(0)
    assert chart.count("<rect") >= len(practices)


def test_a_script_in_the_evidence_is_shown_as_text(audited, trap, tmp_path):
    repo, _, dom = audited
    assert "data-pwned" not in re.search(r"<body[^>]*>", dom).group(0)
    assert "&lt;script&gt;document.body.setAttribute('data-pwned','1')&lt;/script&gt;" in dom
    # control: the same payload written into a page unescaped runs in this browser
    raw = tmp_path / "raw.html"
    raw.write_text(f"<!DOCTYPE html><html><body><pre>{PAYLOAD}</pre></body></html>")
    assert "data-pwned" in re.search(r"<body[^>]*>", _dom(trap, raw)).group(0)


def test_the_content_security_policy_would_block_an_injected_script(tmp_path, trap, monkeypatch):
    import hardrun.audit.formats.html as html
    monkeypatch.setattr(html, "_e", lambda text: str(text))   # escaping switched off
    finding = Finding("HR1001", "root-user", "error", "Dockerfile", 1, None, "m", evidence=PAYLOAD)
    page = tmp_path / "unescaped.html"
    page.write_text(render_html(Report(findings=[finding])))
    assert PAYLOAD in page.read_text()
    assert "data-pwned" not in re.search(r"<body[^>]*>", _dom(trap, page)).group(0)
    # control: without the policy meta, the same page runs the payload
    without = tmp_path / "without-csp.html"
    without.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "",
                              page.read_text()))
    assert "data-pwned" in re.search(r"<body[^>]*>", _dom(trap, without)).group(0)


def test_the_trap_catches_a_page_that_fetches(trap, tmp_path):
    page = tmp_path / "fetching.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://example.com/logo.png"></body></html>')
    before = len(_Trap.requests)
    assert _chromium(trap, f"file://{page}", "--dump-dom").returncode == 0
    assert "/logo.png" in _Trap.requests[before:]


def test_filters_preset_from_the_link(audited, trap):
    repo, report, _ = audited
    findings = report["findings"]
    dom = _dom(trap, repo / "report.html", "#severity=error")
    errors = sum(1 for f in findings if f["severity"] == "error" and not f["suppressed"])
    assert re.search(r'id="shown">(\d+)<', dom).group(1) == str(errors)
    dom = _dom(trap, repo / "report.html", "#text=privileged&accepted=1")
    matching = sum(1 for f in findings if "privileged" in (f["message"] + f["path"]).lower())
    shown = int(re.search(r'id="shown">(\d+)<', dom).group(1))
    assert shown >= matching >= 1 and shown < len(findings)


def test_a_screenshot_renders(audited, trap, tmp_path):
    repo, _, _ = audited
    shot = tmp_path / "report.png"
    before = len(_Trap.requests)
    result = _chromium(trap, f"file://{repo / 'report.html'}", f"--screenshot={shot}")
    assert result.returncode == 0, result.stderr
    assert _Trap.requests[before:] == []
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000


def test_baseline_states_are_counted_and_marked():
    from dataclasses import replace
    base = Finding("HR1001", "root-user", "error", "Dockerfile", 3, None, "m", evidence="USER root")
    report = Report(findings=[replace(base, baseline="unchanged"), replace(base, line=4, baseline="new"),
                              replace(base, line=5, baseline="expired")])
    page = render_html(report)
    assert _count(page, "baselined") == 1 and _count(page, "error") == 2
    assert page.count('data-state="baselined"') == 1 and page.count('data-state="open"') == 2
    assert "baseline entry expired" in page
