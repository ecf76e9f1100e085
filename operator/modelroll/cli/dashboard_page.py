"""The dashboard's HTML, rendered on the server with autoescaping, plus its small script.

The script only polls /api/state, swaps in the fragments rendered here, and posts the
buttons' actions with the page's token: no build step, no client-side templating.
"""

from __future__ import annotations

from typing import Any

import jinja2
from markupsafe import Markup

from modelroll.cli.actions import ACTIONS
from modelroll.cli.dashboard_data import RevisionMetrics
from modelroll.cli.dashboard_view import Detail, Row

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)

LIST = _ENV.from_string("""\
<table id="md-list">
<thead><tr><th>Namespace</th><th>Name</th><th>Ready</th><th>Version</th><th>Strategy</th>
<th>Stable revision</th><th>Traffic split</th><th>Rollout</th></tr></thead>
<tbody>
{% for r in rows %}
<tr class="md-row{% if r.namespace == selected[0] and r.name == selected[1] %} selected{% endif %}"
    data-namespace="{{ r.namespace }}" data-name="{{ r.name }}">
<td>{{ r.namespace }}</td>
<td><a href="?md={{ r.namespace | urlencode }}/{{ r.name | urlencode }}">{{ r.name }}</a></td>
<td class="ready-{{ r.ready }}">{{ r.ready }}</td><td>{{ r.version }}</td><td>{{ r.strategy }}</td>
<td>{{ r.stable }}</td><td class="split">{{ r.split }}</td><td>{{ r.state }}</td>
</tr>
{% else %}
<tr><td colspan="8">No ModelDeployment{% if namespace %} in {{ namespace }}{% endif %}.</td></tr>
{% endfor %}
</tbody></table>
""")

DETAIL = _ENV.from_string("""\
{% if error %}<p class="error">{{ error }}</p>{% endif %}
{% if d %}
<h2 id="detail-title">{{ d.row.namespace }}/{{ d.row.name }}</h2>
<p>Version {{ d.row.version }}, {{ d.row.strategy }}; stable {{ d.row.stable }};
generation {{ d.generation }}</p>
<p>Traffic: <span id="split">{{ d.row.split }}</span></p>
<div class="actions">
{% for action in actions %}
<button type="button" data-action="{{ action }}" data-namespace="{{ d.row.namespace }}"
        data-name="{{ d.row.name }}" id="action-{{ action }}">{{ action | capitalize }}</button>
{% endfor %}
</div>
<h3>Revisions</h3>
<table id="revisions"><thead><tr><th>Revision</th><th>Version</th><th>Role</th><th>Ready/Replicas</th>
<th>Weight</th><th>Requests/s</th><th>Errors</th></tr></thead><tbody>
{% for r in d.revisions %}{% set m = metrics.get(r.name) %}
<tr><td>{{ r.name }}</td><td>{{ r.version }}</td><td class="role-{{ r.role }}">{{ r.role }}</td>
<td>{{ r.ready }}/{{ r.replicas }}</td><td>{{ r.weight }}%</td>
{% if m and m.rate %}<td>{{ "%.2f" | format(m.rate.requests_per_second) }}</td>
<td>{% if m.rate.error_percent is none %}-{% else %}{{ "%.1f" | format(m.rate.error_percent) }}%{% endif %}</td>
{% else %}<td colspan="2" class="muted">{{ m.error if m else metrics_note }}</td>{% endif %}
</tr>
{% endfor %}
</tbody></table>
{% if d.steps %}
<h3>Canary steps</h3>
<ol id="steps">
{% for s in d.steps %}
<li class="step step-{{ s.state }}" data-step="{{ s.number }}">{{ s.weight }}%{% if s.pause_seconds %},
pause {{ s.pause_seconds }}s{% endif %}{% if s.state == "current" %} <strong>current</strong>{% if s.remaining_seconds is not none %},
{{ s.remaining_seconds }}s left{% endif %}{% endif %}</li>
{% endfor %}
</ol>
{% endif %}
<h3>Rollout</h3>
<dl>{% for key, value in d.rollout.items() %}<dt>{{ key }}</dt><dd>{{ value }}</dd>{% else %}<dd>-</dd>{% endfor %}</dl>
<h3>Last analysis</h3>
{% if d.analysis %}
<p id="analysis">{{ d.analysis.verdict }} (step {{ d.analysis.get("step", "-") }}, {{ d.analysis.get("time", "") }}):
{{ d.analysis.get("reason", "") }}: {{ d.analysis.get("message", "") }}</p>
{% else %}<p class="muted">No analysis yet.</p>{% endif %}
{% if d.thresholds %}<p>Thresholds: {% for label, value in d.thresholds %}{{ label }} {{ value }}{% if not loop.last %}; {% endif %}{% endfor %}</p>{% endif %}
<h3>Conditions</h3>
<table id="conditions"><thead><tr><th>Type</th><th>Status</th><th>Reason</th><th>Message</th></tr></thead><tbody>
{% for c in d.conditions %}<tr><td>{{ c.type }}</td><td class="health-{{ c.health }}">{{ c.status }}</td>
<td>{{ c.reason }}</td><td>{{ c.message }}</td></tr>{% endfor %}
</tbody></table>
<h3>Recent Events</h3>
<table id="events"><thead><tr><th>Time</th><th>Type</th><th>Reason</th><th>Count</th><th>Message</th></tr></thead><tbody>
{% for e in d.events %}<tr><td>{{ e.time }}</td><td class="event-{{ e.type }}">{{ e.type }}</td><td>{{ e.reason }}</td>
<td>{{ e.count }}</td><td>{{ e.message }}</td></tr>{% endfor %}
</tbody></table>
{% else %}<p class="muted">Select a ModelDeployment.</p>{% endif %}
""")

PAGE = _ENV.from_string("""\
<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="modelroll-token" content="{{ token }}">
<title>modelroll dashboard</title>
<link rel="stylesheet" href="/app.css"></head>
<body data-selected="{{ selected_param }}">
<header><h1>modelroll</h1><span>{{ context }}</span><span id="updated"></span></header>
<p id="flash" role="status"></p>
<section id="list">{{ list_html }}</section>
<section id="detail">{{ detail_html }}</section>
<script src="/app.js"></script>
</body></html>
""")

SCRIPT = """\
"use strict";
const token = document.querySelector('meta[name="modelroll-token"]').content;
const selected = document.body.dataset.selected;
async function refresh() {
  try {
    const query = selected ? "?md=" + encodeURIComponent(selected) : "";
    const response = await fetch("/api/state" + query, {cache: "no-store"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    const state = await response.json();
    document.getElementById("list").innerHTML = state.list;
    document.getElementById("detail").innerHTML = state.detail;
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (error) {
    document.getElementById("updated").textContent = "update failed: " + error.message;
  }
}
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const {action, namespace, name} = button.dataset;
  const flash = document.getElementById("flash");
  const response = await fetch("/api/action", {
    method: "POST",
    headers: {"Content-Type": "application/json", "X-Modelroll-Token": token},
    body: JSON.stringify({action, namespace, name}),
  });
  const answer = await response.json();
  flash.textContent = answer.message || answer.error;
  flash.className = response.ok ? "ok" : "error";
  refresh();
});
setInterval(refresh, 1000);
"""

STYLE = """\
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1d2330; }
header { display: flex; gap: 1.5rem; align-items: baseline; }
header span { color: #667; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { border-bottom: 1px solid #dde; padding: 0.3rem 0.7rem; text-align: left; font-size: 0.9rem; }
th { background: #f3f4f8; }
tr.selected { background: #eef4ff; }
.ready-True, .health-good, .role-stable { color: #18794e; font-weight: 600; }
.ready-False, .health-bad, .event-Warning, .role-aborted, .error { color: #c0262d; font-weight: 600; }
.health-busy, .role-canary { color: #9a6700; font-weight: 600; }
.muted, .health-idle { color: #889; }
.step-done { color: #18794e; } .step-current { color: #9a6700; } .step-pending { color: #889; }
.actions button { margin-right: 0.5rem; padding: 0.3rem 0.9rem; }
#flash.ok { color: #18794e; }
"""


def list_html(rows: list[Row], selected: tuple[str, str], namespace: str | None) -> str:
    return LIST.render(rows=rows, selected=selected, namespace=namespace)


def detail_html(
    detail: Detail | None,
    metrics: list[RevisionMetrics],
    metrics_note: str,
    error: str | None = None,
) -> str:
    return DETAIL.render(
        d=detail,
        metrics={m.revision: m for m in metrics},
        metrics_note=metrics_note,
        actions=ACTIONS,
        error=error,
    )


def page(**values: Any) -> str:
    values["list_html"] = Markup(values["list_html"])
    values["detail_html"] = Markup(values["detail_html"])
    return PAGE.render(**values)
