"""The web view's HTML (Jinja2, autoescaped): kept in code so the package needs no data files."""

BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{% block title %}ClearML local server{% endblock %} · ClearML local server</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;color:#1d2433;background:#f5f6f8}
header{background:#141822;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#cfd8ff;text-decoration:none} header .brand{font-weight:600;color:#fff}
header .right{margin-left:auto;font-size:13px;color:#9aa3b8}
main{padding:18px 24px;max-width:1500px}
h1{font-size:22px;margin:8px 0} h2{font-size:17px;margin:22px 0 8px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:14px}
th,td{border-bottom:1px solid #e3e6ec;padding:6px 10px;text-align:left;vertical-align:top}
th{background:#eef0f4;font-weight:600}
.tabs{display:flex;gap:4px;border-bottom:2px solid #d6dae3;margin:14px 0}
.tabs a{padding:7px 14px;text-decoration:none;color:#34405a;border-radius:6px 6px 0 0}
.tabs a.active{background:#fff;border:1px solid #d6dae3;border-bottom:2px solid #fff;margin-bottom:-2px;font-weight:600}
.status{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;background:#dde3ee}
.status.completed,.status.published{background:#cdeccf}.status.failed{background:#f6caca}
.status.in_progress{background:#cfe0fb}.status.stopped{background:#f6e3b5}
pre.log{background:#10131a;color:#d6dde9;padding:12px;font-size:12.5px;overflow:auto;max-height:75vh;white-space:pre-wrap}
td,th,h1,h2,h3,p,pre,code,figcaption{overflow-wrap:anywhere}
td.preview{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:12.5px}
.chart{background:#fff;border:1px solid #e3e6ec;margin:4px 0 10px;height:360px}
h3.figure-title{font-size:14px;margin:10px 0 2px;overflow-wrap:anywhere}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:12px}
.images{display:flex;flex-wrap:wrap;gap:14px}.images figure{background:#fff;border:1px solid #e3e6ec;margin:0;padding:8px}
.images img{max-width:420px;max-height:420px;display:block}
.muted{color:#6b7489;font-size:13px} code{font-size:13px} .kv td:first-child{width:260px;color:#4a5570}
.err{background:#fde8e8;border:1px solid #f3b4b4;padding:10px 14px}
form.login{background:#fff;max-width:460px;padding:20px;border:1px solid #e3e6ec}
form.login input{width:100%;padding:7px;margin:4px 0 12px;box-sizing:border-box}
button{padding:7px 16px}
</style>
{% block head %}{% endblock %}
</head><body>
<header><a class="brand" href="/projects">ClearML local server</a>
<a href="/projects">Projects</a><a href="/datasets">Datasets</a><a href="/models">Models</a>
<span class="right">read-only web view{% if signed_in %} · <a href="/logout">sign out</a>{% endif %}</span></header>
<main>{% block main %}{% endblock %}</main>
{% block scripts %}{% endblock %}
</body></html>"""

CHARTS_SCRIPT = """<script src="/static/plotly.min.js"></script>
<script>
document.querySelectorAll("[data-figure]").forEach(function (div) {
  var fig = JSON.parse(document.getElementById(div.dataset.figure).textContent);
  var layout = Object.assign({margin: {l: 50, r: 20, t: 40, b: 40}, autosize: true}, fig.layout || {});
  Plotly.newPlot(div, fig.data || [], layout, {responsive: true, displaylogo: false});
});
</script>"""

FIGURES = """{% for fig in figures %}<section class="figure">
<h3 class="figure-title">{{ fig.title }}</h3>
{% if fig.error %}<p class="err plot-error">{{ fig.error }}</p>{% else %}
<div class="chart" id="chart-{{ loop.index }}" data-figure="fig-{{ loop.index }}" data-title="{{ fig.title }}"></div>
<script type="application/json" id="fig-{{ loop.index }}">{{ fig.json | safe }}</script>{% endif %}
</section>{% endfor %}"""

LOGIN = """{% extends "base" %}{% block title %}Sign in{% endblock %}{% block main %}
<h1>Sign in</h1>
<p class="muted">Use a key pair of this server: the first one is in <code>credentials.json</code> in the server's
data directory (<code>clearml-assets local-server status</code> names the directory).</p>
{% if error %}<p class="err">{{ error }}</p>{% endif %}
<form class="login" method="post" action="/login">
<input type="hidden" name="next" value="{{ next }}">
<label>Access key<input name="access_key" autocomplete="username" required></label>
<label>Secret key<input name="secret_key" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>{% endblock %}"""

ERROR = """{% extends "base" %}{% block title %}{{ title }}{% endblock %}{% block main %}
<h1>{{ title }}</h1><p class="err">{{ message }}</p><p><a href="/projects">All projects</a></p>{% endblock %}"""

PROJECTS = """{% extends "base" %}{% block title %}Projects{% endblock %}{% block main %}
<h1>Projects</h1>
<table><tr><th>Project</th><th>Tasks</th><th>Last update</th></tr>
{% for p in projects %}<tr><td><a href="/projects/{{ p.id }}/experiments">{{ p.name }}</a></td>
<td>{{ p.task_count }}</td><td>{{ p.last_update or "" }}</td></tr>
{% else %}<tr><td colspan="3" class="muted">No projects yet.</td></tr>{% endfor %}</table>{% endblock %}"""

PROJECT = """{% extends "base" %}{% block title %}{{ project.name }}{% endblock %}{% block main %}
<p class="muted"><a href="/projects">Projects</a> /</p><h1>{{ project.name }}</h1>
{% if project.description %}<p class="muted">{{ project.description }}</p>{% endif %}
<form method="get" action="/projects/{{ project.id }}/compare-experiments">
<table id="tasks"><tr><th>Compare</th><th>Task</th><th>Type</th><th>Status</th><th>Last update</th>
{% for m in metric_columns %}<th>{{ m }}</th>{% endfor %}</tr>
{% for t in tasks %}<tr data-task="{{ t.id }}"><td><input type="checkbox" name="ids" value="{{ t.id }}"></td>
<td><a href="/projects/{{ project.id }}/experiments/{{ t.id }}/output/execution">{{ t.name }}</a></td>
<td>{{ t.type }}</td><td><span class="status {{ t.status }}">{{ t.status }}</span></td><td>{{ t.last_update or "" }}</td>
{% for m in metric_columns %}<td>{{ fmt(t.metrics.get(m)) }}</td>{% endfor %}</tr>
{% else %}<tr><td colspan="5" class="muted">No tasks in this project.</td></tr>{% endfor %}</table>
<p><button type="submit">Compare selected tasks' scalars</button></p></form>
{% if models %}<h2>Models</h2><table><tr><th>Model</th><th>Framework</th><th>Ready</th><th>Tags</th></tr>
{% for m in models %}<tr><td><a href="/projects/{{ project.id }}/models/{{ m.id }}">{{ m.name }}</a></td>
<td>{{ m.framework or "" }}</td><td>{{ m.ready }}</td><td>{{ (m.tags or []) | join(", ") }}</td></tr>{% endfor %}</table>{% endif %}
{% endblock %}"""

COMPARE = """{% extends "base" %}{% block title %}Compare{% endblock %}{% block main %}
<p class="muted"><a href="/projects">Projects</a> / <a href="/projects/{{ project.id }}/experiments">{{ project.name }}</a> /</p>
<h1>Compare scalars</h1>
<p>{% for t in tasks %}<a href="/projects/{{ t.project }}/experiments/{{ t.id }}/output/metrics/scalar">{{ t.name }}</a>
<span class="muted">({{ t.id }})</span>{% if not loop.last %} vs {% endif %}{% endfor %}</p>
{% if not figures %}<p class="muted">These tasks have no scalars.</p>{% endif %}
<div class="grid">""" + FIGURES + """</div>{% endblock %}{% block scripts %}""" + CHARTS_SCRIPT + """{% endblock %}"""

TASK = """{% extends "base" %}{% block title %}{{ task.name }}{% endblock %}{% block main %}
<p class="muted"><a href="/projects">Projects</a> / <a href="/projects/{{ project.id }}/experiments">{{ project.name }}</a> /</p>
<h1>{{ task.name }} <span class="status {{ task.status }}" id="task-status">{{ task.status }}</span></h1>
<p class="muted">{{ task.type }} task <code>{{ task.id }}</code>{% if task.started %} · started {{ task.started }}{% endif %}
{% if task.completed %} · ended {{ task.completed }}{% endif %}{% if task.status_reason and task.status_reason != task.status %} · {{ task.status_reason }}{% endif %}</p>
<nav class="tabs">{% for key, label, path in tabs %}
<a href="{{ base }}/{{ path }}" class="{{ 'active' if key == tab else '' }}">{{ label }}</a>{% endfor %}</nav>
{% if tab == "overview" %}
<h2>Hyperparameters</h2>
{% for section, params in hyperparams %}<table class="kv"><tr><th colspan="2">{{ section }}</th></tr>
{% for name, value in params %}<tr><td>{{ name }}</td><td><code>{{ value }}</code></td></tr>{% endfor %}</table>
{% else %}<p class="muted">No hyperparameters.</p>{% endfor %}
<h2>Configuration</h2>
{% for name, value in configuration %}<h3>{{ name }}</h3><pre class="log">{{ value }}</pre>
{% else %}<p class="muted">No configuration objects.</p>{% endfor %}
{% if single_values %}<h2>Summary values</h2><table><tr><th>Metric</th><th>Variant</th><th>Value</th></tr>
{% for v in single_values %}<tr><td>{{ v.metric }}</td><td>{{ v.variant }}</td><td>{{ fmt(v.value) }}</td></tr>{% endfor %}</table>{% endif %}
{% elif tab == "log" %}
<p class="muted">{{ shown }} of {{ total }} log events{% if shown < total %} (the latest){% endif %}.</p>
<pre class="log" id="console">{% for e in log %}{{ e.msg }}
{% endfor %}</pre>
{% elif tab == "scalars" %}
{% if not figures %}<p class="muted">No scalars reported.</p>{% endif %}
<div class="grid">""" + FIGURES + """</div>
{% elif tab == "plots" %}
{% if not figures %}<p class="muted">No plots reported.</p>{% endif %}
<div class="grid">""" + FIGURES + """</div>
{% elif tab == "images" %}
<div class="images">{% for e in images %}<figure><a href="{{ e.url | http_only }}"><img src="{{ e.url | http_only }}" alt="{{ e.metric }} / {{ e.variant }}"></a>
<figcaption>{{ e.metric }} / {{ e.variant }} · iteration {{ e.iter }}</figcaption></figure>
{% else %}<p class="muted">No debug images reported.</p>{% endfor %}</div>
{% elif tab == "artifacts" %}
<h2>Artifacts</h2><table id="artifacts"><tr><th>Name</th><th>Type</th><th>Size</th><th>Preview</th><th>File</th></tr>
{% for a in artifacts %}<tr><td>{{ a.key }}</td><td>{{ a.type }}</td><td>{{ a.content_size or "" }}</td>
<td class="muted preview">{{ (a.type_data or {}).get("preview", "")[:300] }}</td>
<td>{% if a.uri | http_only %}<a href="{{ a.uri | http_only }}" download>download</a>{% elif a.uri %}<code>{{ a.uri }}</code>{% endif %}</td></tr>
{% else %}<tr><td colspan="5" class="muted">No artifacts.</td></tr>{% endfor %}</table>
<h2>Models</h2><table id="models"><tr><th>Role</th><th>Model</th><th>Framework</th><th>File</th></tr>
{% for role, m in models %}<tr><td>{{ role }}</td><td><a href="/projects/{{ m.project or '*' }}/models/{{ m.id }}">{{ m.name }}</a></td>
<td>{{ m.framework or "" }}</td><td>{% if m.uri | http_only %}<a href="{{ m.uri | http_only }}" download>download</a>{% elif m.uri %}<code>{{ m.uri }}</code>{% endif %}</td></tr>
{% else %}<tr><td colspan="4" class="muted">No models.</td></tr>{% endfor %}</table>
{% endif %}{% endblock %}
{% block scripts %}{% if figures %}""" + CHARTS_SCRIPT + """{% endif %}{% endblock %}"""

MODEL = """{% extends "base" %}{% block title %}{{ model.name }}{% endblock %}{% block main %}
<p class="muted"><a href="/models">Models</a> /</p>
<h1>{{ model.name }}</h1>
<table class="kv" id="model">
<tr><td>Id</td><td><code>{{ model.id }}</code></td></tr>
<tr><td>Framework</td><td>{{ model.framework or "" }}</td></tr>
<tr><td>Ready (published)</td><td>{{ model.ready }}</td></tr>
<tr><td>Tags</td><td>{{ (model.tags or []) | join(", ") }}</td></tr>
<tr><td>Created</td><td>{{ model.created or "" }}</td></tr>
<tr><td>Task</td><td>{% if model.task %}<a href="/projects/{{ model.project or '*' }}/experiments/{{ model.task }}/output/execution">{{ model.task }}</a>{% endif %}</td></tr>
<tr><td>File</td><td>{% if model.uri | http_only %}<a href="{{ model.uri | http_only }}" id="model-download" download>{{ model.uri }}</a>{% elif model.uri %}<code>{{ model.uri }}</code>{% endif %}</td></tr>
{% if model.labels %}<tr><td>Labels</td><td>{% for k, v in model.labels.items() %}{{ k }}={{ v }} {% endfor %}</td></tr>{% endif %}
</table>
{% if metadata %}<h2>Metadata</h2><table><tr><th>Key</th><th>Value</th><th>Type</th></tr>
{% for m in metadata %}<tr><td>{{ m.key }}</td><td>{{ m.value }}</td><td>{{ m.type }}</td></tr>{% endfor %}</table>{% endif %}
{% if design %}<h2>Design</h2><pre class="log">{{ design }}</pre>{% endif %}{% endblock %}"""

MODELS = """{% extends "base" %}{% block title %}Models{% endblock %}{% block main %}
<h1>Models</h1><table><tr><th>Model</th><th>Framework</th><th>Ready</th><th>Tags</th><th>Task</th></tr>
{% for m in models %}<tr><td><a href="/projects/{{ m.project or '*' }}/models/{{ m.id }}">{{ m.name }}</a></td>
<td>{{ m.framework or "" }}</td><td>{{ m.ready }}</td><td>{{ (m.tags or []) | join(", ") }}</td><td><code>{{ m.task or "" }}</code></td></tr>
{% else %}<tr><td colspan="5" class="muted">No models.</td></tr>{% endfor %}</table>{% endblock %}"""

DATASETS = """{% extends "base" %}{% block title %}Datasets{% endblock %}{% block main %}
<h1>Datasets</h1><table><tr><th>Dataset</th><th>Version</th><th>Status</th><th>Files</th><th>Size</th></tr>
{% for d in datasets %}<tr><td><a href="/datasets/simple/{{ d.project }}/experiments/{{ d.id }}">{{ d.dataset }}</a></td>
<td>{{ d.version }}</td><td><span class="status {{ d.status }}">{{ d.status }}</span></td>
<td>{{ d.runtime.get("ds_file_count", "") }}</td><td>{{ d.runtime.get("ds_total_size", "") }}</td></tr>
{% else %}<tr><td colspan="5" class="muted">No datasets.</td></tr>{% endfor %}</table>{% endblock %}"""

DATASET = """{% extends "base" %}{% block title %}{{ name }}{% endblock %}{% block main %}
<p class="muted"><a href="/datasets">Datasets</a> /</p>
<h1>{{ name }} <span class="muted">version {{ version }}</span> <span class="status {{ task.status }}">{{ task.status }}</span></h1>
<p><a href="/projects/{{ task.project }}/experiments/{{ task.id }}/output/log">Task console</a> ·
<a href="/projects/{{ task.project }}/experiments/{{ task.id }}/artifacts">Artifacts</a> ·
<a href="/projects/{{ task.project }}/experiments/{{ task.id }}/output/execution">Details</a></p>
<table class="kv" id="dataset">{% for k, v in stats %}<tr><td>{{ k }}</td><td>{{ v }}</td></tr>{% endfor %}</table>
<h2>Versions</h2><table><tr><th>Version</th><th>Status</th><th>Id</th></tr>
{% for v in versions %}<tr><td><a href="/datasets/simple/{{ v.project }}/experiments/{{ v.id }}">{{ v.version }}</a></td>
<td>{{ v.status }}</td><td><code>{{ v.id }}</code></td></tr>{% endfor %}</table>
{% for name, value in configuration %}<h2>{{ name }}</h2><pre class="log">{{ value }}</pre>{% endfor %}
{% endblock %}"""

ALL = {"base": BASE, "login": LOGIN, "error": ERROR, "projects": PROJECTS, "project": PROJECT, "compare": COMPARE,
       "task": TASK, "model": MODEL, "models": MODELS, "datasets": DATASETS, "dataset": DATASET}
