"""The report.html template (jinja2, autoescaped).

Kept as a module string rather than a package data file so an installed harness never misses it, and the
report stays a single self-contained HTML file (inline CSS, images as data URIs, no scripts, no network).
"""
from __future__ import annotations

import jinja2

# The rules every page shares (report.html, the game day's page, the history's index.html): one look, one set of
# verdict colours.
PAGE_CSS = """ body { font-family: -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
 h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
 table { border-collapse: collapse; width: 100%; font-size: 0.92em; }
 th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
 th { background: #f4f4f4; }
 .verdict { display: inline-block; padding: 0.2em 0.8em; border-radius: 4px; color: #fff; font-weight: bold; }
 .v-pass { background: #2e7d32; } .v-fail { background: #c62828; } .v-aborted { background: #ef6c00; }
 .v-error { background: #6a1b9a; } .v-inconclusive { background: #b26a00; } .muted { color: #777; }
"""

RUN_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>g7chaos · {{ r.scenario }} · {{ r.verdict }}</title>
<style>
""" + PAGE_CSS + """ .ok { color: #2e7d32; font-weight: bold; } .bad { color: #c62828; font-weight: bold; } .na { color: #757575; } .warn { color: #b26a00; font-weight: bold; }
 .warn { color: #ef6c00; font-weight: bold; }
 .muted { color: #777; } pre { white-space: pre-wrap; font-size: 0.85em; margin: 0; }
 details summary { cursor: pointer; color: #555; }
 .meta td:first-child { width: 14em; font-weight: bold; }
 img { max-width: 100%; height: auto; }
 .score { font-size: 1.6em; font-weight: bold; }
 @media print { body { margin: 0; max-width: none; font-size: 10pt; } h2 { break-after: avoid; }
   img, tr { break-inside: avoid; } details > * { display: block; } }
</style>
</head>
<body>
<h1>{{ r.scenario }}</h1>
<p class="muted">{{ r.description }}</p>
<p><span class="verdict v-{{ r.verdict }}">{{ r.verdict | upper }}</span> exit code {{ r.exit_code }}</p>

<table class="meta">
 <tr><td>target</td><td>{{ r.target }}</td></tr>
 <tr><td>profile</td><td>{{ r.profile or "-" }}</td></tr>
 <tr><td>seed</td><td>{{ r.seed if r.seed is not none else "-" }}</td></tr>
 <tr><td>started</td><td>{{ r.started_at | ts }}</td></tr>
 <tr><td>ended</td><td>{{ r.ended_at | ts }}{% if r.duration_s is not none %} ({{ "%.1f" | format(r.duration_s) }} s){% endif %}</td></tr>
 {% if r.stop_condition %}<tr><td>stop condition</td><td class="warn">{{ r.stop_condition.condition }}:
   {{ r.stop_condition.reason }}</td></tr>{% endif %}
 {% if r.error %}<tr><td>error</td><td class="bad">{{ r.error }}</td></tr>{% endif %}
 {% if r.measurement_degraded %}<tr><td>measurement</td><td class="warn">degraded: {{ r.measurement_degraded_reason or "load generator saturated" }}
   (latency figures may be inflated by the load generator, not the deployment)</td></tr>{% endif %}
</table>

<h2>Score</h2>
{% if r.score %}
<p id="score"><span class="score {{ 'bad' if r.score.gated_by else '' }}">{{ "%.1f" | format(r.score.value) }} / 100</span>
 <span class="muted">{{ r.score.detail }}</span></p>
<p class="muted">The resilience score (docs/REPORTS.md): a failed correctness check or a fault that did not land gates it
 to 0; otherwise the mean of goodput during the faults against steady state and each bounded milestone against its limit.</p>
{% else %}<p class="muted">No score: the run's timeline could not be built.</p>{% endif %}

<h2>Milestones</h2>
{% if r.milestones %}
<p class="muted">Times on the scenario's clock: deployment seconds after the fault began (its loss, else its injection){% if scale != 1 %};
 wall seconds in brackets (this target runs {{ "%g" | format(scale) }} deployment seconds per wall second){% endif %}.</p>
<table id="milestones">
 <tr><th>fault</th><th>milestone</th><th>after</th><th>limit</th><th>from</th></tr>
 {% for m in r.milestones %}
 <tr><td>{{ m.index }}: {{ m.fault }}</td><td>{{ m.name }}</td>
  {% if m.after_s is not none %}<td class="{{ 'bad' if m.late else '' }}">{{ "%.2f" | format(m.after_s) }} s{% if scale != 1 %} ({{ "%.2f" | format(m.wall_after_s) }} s wall){% endif %}</td>
  {% else %}<td class="na">absent</td>{% endif %}
  <td>{{ ("%g s" | format(m.limit_s)) if m.limit_s is not none else "-" }}</td>
  <td>{% if m.after_s is not none %}{{ m.source }}{% else %}<span class="na">{{ m.absent }}</span>{% endif %}</td></tr>
 {% endfor %}
</table>
{% else %}<p class="muted">No milestones (no fault was injected).</p>{% endif %}

{% for title, png in plots if title == "Timeline" %}
<h2>Timeline</h2>
<img alt="the run timeline" id="timeline" src="data:image/png;base64,{{ png }}">
<p class="muted">Client lane: TTFT p50/p99 from the send, p99 from the scheduled arrival (open-loop load), TBT p99 (each
 request's longest gap); requests, errors and goodput (requests that met every SLO; failed, abandoned and dropped ones count
 as misses) per second. Traffic lane: share of answers per zone. Cluster lane: every change the harness saw. Shaded: faults in place.</p>
{% endfor %}
{% if ttft %}
<table id="ttft">
 <tr><th>TTFT</th><th>p50</th><th>p99</th></tr>
 <tr><td>from the send</td><td>{{ ttft.send_p50_ms | ms }}</td><td>{{ ttft.send_p99_ms | ms }}</td></tr>
 {% if ttft.arrival_p50_ms is not none %}<tr><td>from the scheduled arrival ({{ "%d" | format(ttft.dropped_arrivals) }} arrivals dropped)</td>
  <td>{{ ttft.arrival_p50_ms | ms }}</td><td>{{ ttft.arrival_p99_ms | ms }}</td></tr>{% endif %}
</table>
{% endif %}

<h2>Checks</h2>
{% if r.checks %}
<table id="checks">
 <tr><th>check</th><th>result</th><th>reason</th><th>time</th></tr>
 {% for c in r.checks %}
 <tr>
  <td>{{ c.name }}</td>
  <td class="{{ {'pass': 'ok', 'fail': 'bad', 'inconclusive': 'warn'}.get(c.status, 'na') }}">{{ {'pass': 'PASS', 'fail': 'FAIL', 'inconclusive': 'INCONCLUSIVE'}.get(c.status, 'N/A') }}</td>
  <td>{{ c.reason }}{% if c.evidence %}<details><summary>evidence</summary><pre>{{ c.evidence | pretty }}</pre></details>{% endif %}</td>
  <td>{{ "%.2f" | format(c.duration_s) }} s</td>
 </tr>
 {% endfor %}
</table>
{% else %}<p class="muted">No checks were evaluated.</p>{% endif %}

<h2>Faults</h2>
{% if r.faults %}
<table id="faults">
 <tr><th>fault</th><th>target</th><th>injected</th><th>landed</th><th>reverted</th></tr>
 {% for f in r.faults %}
 <tr>
  <td>{{ f.name }}{% if f.params %}<details><summary>params</summary><pre>{{ f.params | pretty }}</pre></details>{% endif %}</td>
  <td>{{ f.target }}</td>
  <td>{{ f.injected_at | ts }}</td>
  <td class="{{ 'ok' if f.landed else 'bad' }}">{% if f.landed %}yes, {{ f.landed_at | ts }}
    {% if f.injected_at and f.landed_at %}(+{{ "%.1f" | format((f.landed_at - f.injected_at).total_seconds()) }} s){% endif %}
    {% elif f.landed is sameas false %}NO{% else %}not proven{% endif %}
    {% if f.landed_evidence %}<details><summary>evidence</summary><pre>{{ f.landed_evidence | pretty }}</pre></details>{% endif %}</td>
  <td>{{ f.reverted_at | ts }}{% if f.revert_error %}<br><span class="bad">revert error: {{ f.revert_error }}</span>{% endif %}</td>
 </tr>
 {% endfor %}
</table>
{% else %}<p class="muted">No faults.</p>{% endif %}

<h2>Load</h2>
<table id="metrics">
 <tr><th>window</th><th>requests</th><th>errors</th><th>error rate</th><th>TTFT p50</th><th>TTFT p99</th>
     <th>TBT p50</th><th>TBT p99</th><th>E2E p99</th><th>measurement</th></tr>
 {% for w in r.metrics.windows %}
 <tr><td>{{ w.window }}</td><td>{{ w.requests }}</td><td>{{ w.errors }}</td><td>{{ w.error_rate | pct }}</td>
  <td>{{ w.ttft_p50_ms | ms }}</td><td>{{ w.ttft_p99_ms | ms }}</td><td>{{ w.tbt_p50_ms | ms }}</td>
  <td>{{ w.tbt_p99_ms | ms }}</td><td>{{ w.e2e_p99_ms | ms }}</td>
  <td class="{{ 'warn' if w.degraded else '' }}">{% if w.degraded %}degraded{% if w.degraded_reason %}: {{ w.degraded_reason }}{% endif %}{% else %}ok{% endif %}</td></tr>
 {% endfor %}
 <tr><th>whole run</th><th>{{ r.metrics.requests }}</th><th>{{ r.metrics.errors }}</th><th>{{ r.metrics.error_rate | pct }}</th>
  <th>{{ r.metrics.ttft_p50_ms | ms }}</th><th>{{ r.metrics.ttft_p99_ms | ms }}</th><th>{{ r.metrics.tbt_p50_ms | ms }}</th>
  <th>{{ r.metrics.tbt_p99_ms | ms }}</th><th></th><th></th></tr>
</table>
<p class="muted">TTFT: request sent to first event with content. TBT: pooled gaps between consecutive content events.</p>

{% for title, png in plots if title != "Timeline" %}
<h3>{{ title }}</h3>
<img alt="{{ title }}" src="data:image/png;base64,{{ png }}">
{% endfor %}

{% if marks %}
<h2>Cluster marks</h2>
<table id="marks">
 <tr><th>at (scenario s)</th><th>wall s</th><th>what</th><th>detail</th></tr>
 {% for m in marks %}<tr><td>{{ "%.2f" | format(m.t) }}</td><td>{{ "%.3f" | format(m.wall) }}</td><td>{{ m.label }}</td><td>{{ m.detail }}</td></tr>
 {% endfor %}
</table>
{% endif %}

<p class="muted">g7chaos report{% if r.report_dir %} · {{ r.report_dir }}{% endif %}</p>
</body>
</html>
"""


GAMEDAY_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>g7chaos game day · {{ g.name }} · {{ g.verdict }}</title>
<style>
""" + PAGE_CSS + """</style>
</head>
<body>
<h1>Game day: {{ g.name }}</h1>
<p><span class="verdict v-{{ g.verdict }}">{{ g.verdict | upper }}</span> exit code {{ g.exit_code }} ·
 score {{ ("%.1f" | format(g.score)) if g.score is not none else "-" }} ·
 {{ g.counts["pass"] }} pass, {{ g.counts["fail"] }} fail, {{ g.counts["inconclusive"] }} inconclusive, {{ g.counts["aborted"] }} aborted, {{ g.counts["error"] }} error
 · target {{ g.target or "-" }} · profile {{ g.profile or "-" }}</p>
<table id="runs">
 <tr><th>scenario</th><th>verdict</th><th>score</th><th>failed checks / reason</th><th>TTFT p99</th><th>TBT p99</th><th>errors</th><th>report</th></tr>
 {% for r, link in runs %}
 <tr><td>{{ r.scenario }}</td><td><span class="verdict v-{{ r.verdict }}">{{ r.verdict }}</span></td>
  <td>{{ ("%.1f" | format(r.score.value)) if r.score else "-" }}</td>
  <td>{% if r.verdict == "fail" %}{% for c in r.failed_checks %}<b>{{ c.name }}</b>: {{ c.reason }}<br>{% endfor %}
      {% elif r.verdict != "pass" %}{{ r.summary() }}{% endif %}</td>
  <td>{{ r.metrics.ttft_p99_ms | ms }}</td><td>{{ r.metrics.tbt_p99_ms | ms }}</td>
  <td>{{ r.metrics.errors }} / {{ r.metrics.requests }}</td>
  <td>{% if link %}<a href="{{ link }}">report</a>{% else %}-{% endif %}</td></tr>
 {% endfor %}
</table>
<p class="muted">started {{ g.started_at | ts }} · ended {{ g.ended_at | ts }}</p>
</body>
</html>
"""


def _ts(value) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _ms(value) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _pct(value) -> str:
    return "-" if value is None else f"{100.0 * value:.2f}%"


def environment() -> jinja2.Environment:
    import json

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["ts"] = _ts
    env.filters["ms"] = _ms
    env.filters["pct"] = _pct
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True, default=str)
    return env
