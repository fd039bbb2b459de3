"""One self-contained HTML page: a summary by severity and practice with a chart, the
findings grouped by file with their offending lines, and filters.

Nothing is fetched: the CSS, the script and the chart (SVG) are inline, and the page's
Content-Security-Policy (`default-src 'none'`) allows only that style and that script,
by their hashes. Every text that comes from an audited file (paths, subjects, messages,
evidence lines) is escaped, so a file cannot inject markup or script into the report;
were one to slip through, the policy would still not run it.
"""
from __future__ import annotations

import base64
import hashlib
from collections import Counter
from html import escape

from ... import __version__
from ...display import printable
from ..findings import SEVERITIES

_ORDER = tuple(reversed(SEVERITIES))            # error, warning, info
_COLOR = {"error": "#c62828", "warning": "#ef6c00", "info": "#1565c0"}

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header,main{max-width:1100px;margin:0 auto;padding:12px 20px}
h1{font-size:20px;margin:8px 0}h2{font-size:16px;margin:18px 0 6px}
.verdict-fail{color:#c62828}.verdict-ok{color:#2e7d32}
.counts{display:flex;gap:12px;flex-wrap:wrap;margin:8px 0}
.count{background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px 12px}
.count b{font-size:18px;display:block}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
td.n{text-align:right}
.filters{position:sticky;top:0;background:#fafafa;padding:8px 0;border-bottom:1px solid #ddd;
display:flex;gap:10px;flex-wrap:wrap;align-items:center}
section.file{background:#fff;border:1px solid #ddd;border-radius:6px;margin:10px 0;padding:4px 12px}
.finding{border-top:1px solid #eee;padding:6px 0}.finding:first-of-type{border-top:0}
.sev{font-weight:600;text-transform:uppercase;font-size:12px}
.sev-error{color:#c62828}.sev-warning{color:#ef6c00}.sev-info{color:#1565c0}
.state{font-size:12px;color:#666;border:1px solid #ccc;border-radius:3px;padding:0 4px}
pre.evidence{background:#f4f4f4;margin:4px 0;padding:4px 8px;overflow-x:auto;white-space:pre}
.ln{color:#888;user-select:none;margin-right:8px}
.hidden{display:none}.errors li{color:#c62828}
"""

# Filters: severity, practice, free text, and whether accepted findings are shown; a link
# may preset them (report.html#severity=error&text=curl).
_SCRIPT = """
(function(){
  var sev=document.getElementById('f-severity'),pra=document.getElementById('f-practice'),
      txt=document.getElementById('f-text'),acc=document.getElementById('f-accepted'),
      shown=document.getElementById('shown');
  function apply(){
    var n=0,q=txt.value.toLowerCase();
    document.querySelectorAll('.finding').forEach(function(el){
      var ok=(!sev.value||el.dataset.severity===sev.value)&&
             (!pra.value||el.dataset.practice===pra.value)&&
             (!q||el.textContent.toLowerCase().indexOf(q)>=0)&&
             (acc.checked||el.dataset.state==='open');
      el.classList.toggle('hidden',!ok); if(ok){n++;}
    });
    document.querySelectorAll('section.file').forEach(function(s){
      s.classList.toggle('hidden',!s.querySelector('.finding:not(.hidden)')&&
        s.querySelector('.finding')!==null);
    });
    shown.textContent=String(n);
  }
  [sev,pra,txt,acc].forEach(function(el){el.addEventListener('input',apply);
    el.addEventListener('change',apply);});
  new URLSearchParams(location.hash.slice(1)).forEach(function(v,k){
    if(k==='severity'){sev.value=v;}else if(k==='practice'){pra.value=v;}
    else if(k==='text'){txt.value=v;}else if(k==='accepted'){acc.checked=v==='1';}
  });
  apply();
})();
"""


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (f"default-src 'none'; style-src {_digest(_STYLE)}; script-src {_digest(_SCRIPT)}; "
       "img-src 'none'; connect-src 'none'; form-action 'none'; base-uri 'none'")


def _e(text) -> str:
    """Text from an audited file, made printable and escaped for HTML (and attributes)."""
    return escape(printable(str(text)), quote=True)


def _state(finding) -> str:
    if finding.suppressed:
        return "suppressed"
    return "baselined" if finding.baselined else "open"


def render_html(report, *, fail_on: str = "warning") -> str:
    open_findings = [f for f in report.findings if _state(f) == "open"]
    verdict = "FAIL" if report.exit_code(fail_on) else "ok"
    body = [
        "<header>",
        f"<h1>hardrun audit: <span id=\"verdict\" class=\"verdict-{verdict.lower()}\">{verdict}</span></h1>",
        f"<p>{len(report.files)} file(s) audited, failing at {_e(fail_on)} and above; "
        f"hardrun {_e(__version__)}.</p>",
        _counts(report, open_findings),
        "</header><main>",
        _practices(report),
        _filters(report),
        _errors(report),
        _files(report),
        "</main>",
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n"
            "<title>hardrun audit report</title>\n"
            f"<style>{_STYLE}</style></head>\n<body>\n" + "\n".join(body) +
            f"\n<script>{_SCRIPT}</script>\n</body></html>\n")


def _counts(report, open_findings) -> str:
    """The open findings by severity, then the accepted ones: the text summary's numbers."""
    by_severity = Counter(f.severity for f in open_findings)
    cells = [(f"count-{severity}", severity, by_severity[severity]) for severity in _ORDER]
    cells += [("count-suppressed", "suppressed", sum(1 for f in report.findings if f.suppressed)),
              ("count-baselined", "baselined", sum(1 for f in report.findings
                                                   if _state(f) == "baselined")),
              ("count-total", "findings in all", len(report.findings)),
              ("count-unreadable", "files not audited", len(report.errors))]
    items = "".join(f'<div class="count" id="{ident}" data-count="{count}"><b>{count}</b>{label}</div>'
                    for ident, label, count in cells)
    return f'<div class="counts">{items}</div>'


def _practices(report) -> str:
    """A table and a stacked bar chart of the open findings per practice and severity."""
    table: dict[str, Counter] = {}
    for finding in report.findings:
        if _state(finding) == "open":
            table.setdefault(finding.practice, Counter())[finding.severity] += 1
    if not table:
        return "<h2>By practice</h2><p id=\"no-open\">No open findings.</p>"
    rows = sorted(table.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    head = "".join(f"<th>{severity}</th>" for severity in _ORDER)
    lines = "".join(
        f'<tr data-practice="{_e(practice)}"><td>{_e(practice)}</td>' +
        "".join(f'<td class="n">{counts[s]}</td>' for s in _ORDER) + "</tr>"
        for practice, counts in rows)
    return ("<h2>By practice</h2>" + _chart(rows) +
            f"<table id=\"by-practice\"><tr><th>practice</th>{head}</tr>{lines}</table>")


def _chart(rows) -> str:
    widest = max(sum(counts.values()) for _, counts in rows)
    label_width, bar_width, row_height = 220, 560, 22
    height = row_height * len(rows) + 4
    parts = [f'<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="{label_width + bar_width + 60}" '
             f'height="{height}" role="img" aria-label="open findings per practice">']
    for index, (practice, counts) in enumerate(rows):
        y = index * row_height + 2
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{_e(practice)}</text>')
        x = float(label_width)
        for severity in _ORDER:
            if counts[severity]:
                width = bar_width * counts[severity] / widest
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{row_height - 6}" '
                             f'fill="{_COLOR[severity]}"><title>{counts[severity]} {severity}</title></rect>')
                x += width
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 15}" font-size="12">{sum(counts.values())}</text>')
    return "".join(parts) + "</svg>"


def _filters(report) -> str:
    practices = sorted({f.practice for f in report.findings})
    options = "".join(f'<option value="{_e(p)}">{_e(p)}</option>' for p in practices)
    severities = "".join(f'<option value="{s}">{s}</option>' for s in _ORDER)
    return ('<h2>Findings</h2><div class="filters">'
            f'<label>Severity <select id="f-severity"><option value="">all</option>{severities}</select></label>'
            f'<label>Practice <select id="f-practice"><option value="">all</option>{options}</select></label>'
            '<label>Text <input id="f-text" type="search" placeholder="rule, path, message…"></label>'
            '<label><input id="f-accepted" type="checkbox"> show suppressed and baselined</label>'
            f'<span><span id="shown">{sum(1 for f in report.findings if _state(f) == "open")}</span> shown</span>'
            '</div>')


def _errors(report) -> str:
    if not report.errors:
        return ""
    items = "".join(f"<li><code>{_e(error.path)}</code>: {_e(error.message)}</li>"
                    for error in report.errors)
    return f'<h2>Files that could not be audited</h2><ul class="errors" id="errors">{items}</ul>'


def _files(report) -> str:
    kinds = {f.path: f.kind for f in report.files}
    grouped: dict[str, list] = {}
    for finding in report.findings:
        grouped.setdefault(finding.path, []).append(finding)
    sections = []
    for path, findings in grouped.items():
        kind = f" <small>({_e(kinds[path])})</small>" if path in kinds else ""
        items = "".join(_finding(f) for f in findings)
        sections.append(f'<section class="file" data-path="{_e(path)}"><h2><code>{_e(path)}</code>'
                        f'{kind}</h2>{items}</section>')
    return "".join(sections)


def _finding(finding) -> str:
    state = _state(finding)
    where = f":{finding.line}" if finding.line else ""
    subject = f"[{_e(finding.subject)}] " if finding.subject else ""
    badge = f' <span class="state">{state}</span>' if state != "open" else ""
    if finding.baseline == "expired":
        badge = ' <span class="state">baseline entry expired</span>'
    evidence = ""
    if finding.evidence is not None:
        evidence = (f'<pre class="evidence"><span class="ln">{finding.line}</span>'
                    f'{_e(finding.evidence)}</pre>')
    return (f'<div class="finding" data-severity="{finding.severity}" '
            f'data-practice="{_e(finding.practice)}" data-rule="{_e(finding.rule)}" data-state="{state}">'
            f'<span class="sev sev-{finding.severity}">{finding.severity}</span> '
            f'<b>{_e(finding.rule)}</b> <code>{_e(finding.path)}{where}</code> {subject}'
            f'<span class="msg">{_e(finding.message)}</span>{badge}{evidence}</div>')
