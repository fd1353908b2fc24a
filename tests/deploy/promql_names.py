"""Metric names in PromQL expressions, and every expression the shipped deploy files contain.

A small lexer, not a full parser: it drops strings, label matchers, range/offset durations and
the label lists of by/without/on/ignoring/group_left/group_right, and treats an identifier that
is followed by "(" as a function or aggregation. What is left is metric names. The expressions
themselves are also sent to the real Prometheus by observability_test.py, which rejects any
syntax this lexer would misread.
"""

import json
import os
import re

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Words that are never metric names in a PromQL expression.
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
    "unless", "inf", "nan", "atan2", "sum", "min", "max", "avg", "group", "stddev", "stdvar",
    "count", "count_values", "bottomk", "topk", "quantile",
}
# Keywords followed by a parenthesised label list, which names labels, not metrics.
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}

# Series Prometheus itself attaches to every target; bertd cannot export them.
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                        "scrape_samples_post_metric_relabeling", "scrape_series_added"}

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r'__name__\s*=\s*"([^"]*)"')
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_TOKEN = re.compile(r"\s+|(?P<number>\d[\w.]*)|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)|(?P<other>.)")


def _strip_balanced(text, open_char, close_char):
    """Removes every open_char ... close_char group (no nesting in PromQL's {} and [])."""
    out, depth = [], 0
    for char in text:
        if char == open_char:
            depth += 1
        elif char == close_char and depth:
            depth -= 1
        elif not depth:
            out.append(char)
    return "".join(out)


def metric_names(expr):
    """The metric names `expr` selects, as a set."""
    names = set(_NAME_MATCHER.findall(expr))
    text = _GRAFANA_VARIABLE.sub(" 1m ", expr)
    text = _STRING.sub('""', text)
    text = _strip_balanced(text, "{", "}")
    text = _strip_balanced(text, "[", "]")
    tokens = []
    for match in _TOKEN.finditer(text):
        if match.group("number"):
            tokens.append(("number", match.group("number")))
        elif match.group("ident"):
            tokens.append(("ident", match.group("ident")))
        elif match.group("other"):
            tokens.append(("other", match.group("other")))
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "ident" and value in LABEL_LIST_KEYWORDS and following == "(":
            close = next((j for j in range(i + 2, len(tokens)) if tokens[j][1] == ")"), len(tokens))
            i = close + 1
            continue
        if kind == "ident" and following != "(" and value not in KEYWORDS:
            names.add(value)
        i += 1
    return names


def dashboard_expressions(path):
    """(where, expr) for every query of a Grafana dashboard JSON: panel targets and variables."""
    with open(path) as f:
        dashboard = json.load(f)
    found = []

    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                found.append((f"{os.path.basename(path)}: {panel.get('title')}", target["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") == "query" and query:
            # label_values(<selector>, label): the selector is the expression.
            match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query)
            found.append((f"{os.path.basename(path)}: variable {variable['name']}",
                          match.group(1) if match else query))
    return found


def rule_expressions(path):
    """(where, expr) for every alerting or recording rule of a Prometheus rule file."""
    import yaml
    with open(path) as f:
        rules = yaml.safe_load(f)
    return [(f"{os.path.basename(path)}: {rule.get('alert') or rule.get('record')}", rule["expr"])
            for group in rules["groups"] for rule in group["rules"]]


def adapter_expressions(path):
    """(where, expr) for the prometheus-adapter rules' seriesQuery selectors."""
    import yaml
    with open(path) as f:
        values = yaml.safe_load(f)
    return [(f"{os.path.basename(path)}: {rule['name']['as']}", rule["seriesQuery"])
            for rule in values["rules"]["custom"]]


def shipped_expressions():
    """Every PromQL expression in deploy/: dashboards, alert rules, adapter rules."""
    found = []
    dashboards = os.path.join(REPO, "deploy", "grafana", "dashboards")
    for name in sorted(os.listdir(dashboards)):
        if name.endswith(".json"):
            found += dashboard_expressions(os.path.join(dashboards, name))
    found += rule_expressions(os.path.join(REPO, "deploy", "prometheus", "alerts.yml"))
    found += adapter_expressions(os.path.join(
        REPO, "deploy", "kubernetes", "overlays", "inference", "prometheus-adapter-values.yaml"))
    return found


def exported_names(exposition):
    """Metric names a /metrics text exposes: sample names, and for histogram and summary
    families also the _bucket/_sum/_count names a family without samples would have."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names |= {name + "_bucket", name + "_sum", name + "_count"}
            elif kind == "summary":
                names |= {name + "_sum", name + "_count"}
        elif line and not line.startswith("#"):
            names.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    return names


def substitute_grafana_variables(expr, rate_interval="1m"):
    """A Grafana query as Prometheus would receive it with every variable on "All"."""
    expr = expr.replace("$__rate_interval", rate_interval).replace("${__rate_interval}", rate_interval)
    expr = expr.replace("$__interval", rate_interval)
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)
