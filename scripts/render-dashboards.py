#!/usr/bin/python3
"""Draws bertd's Grafana dashboards as PNG from a real Prometheus, without Grafana.

Grafana is not packaged in Debian 12, so this runs every panel's PromQL against Prometheus'
HTTP API (query_range for time series, an instant query for tables) and plots the answers with
matplotlib, laid out by the panels' gridPos. Dashboard variables are taken as "All".

  scripts/render-dashboards.py --prometheus http://127.0.0.1:9090 --start 1700000000 \
      --end 1700000600 --out docs/images deploy/grafana/dashboards/*.json

Prints one line per panel with how many series it drew; exits 1 when a query fails.
Needs python3-matplotlib (Debian).
"""

import argparse
import json
import math
import os
import re
import sys
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import dates as mdates  # noqa: E402
import datetime  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "deploy"))
from promql_names import substitute_grafana_variables  # noqa: E402


def query(prometheus, path, params):
    url = f"{prometheus}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"{path} {params.get('query')}: {body}")
    return body["data"]["result"]


def legend(fmt, labels):
    if not fmt:
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__") or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()


def unit_label(unit):
    return {"s": "seconds", "reqps": "requests/s", "percentunit": "fraction"}.get(unit, "")


def draw_timeseries(ax, panel, prometheus, start, end, step, rate_interval):
    drawn = 0
    for target in panel.get("targets", []):
        expr = substitute_grafana_variables(target["expr"], rate_interval)
        for series in query(prometheus, "query_range",
                            {"query": expr, "start": start, "end": end, "step": step}):
            times = [datetime.datetime.fromtimestamp(float(t), datetime.timezone.utc)
                     for t, _ in series["values"]]
            values = [float(v) for _, v in series["values"]]
            if all(math.isnan(v) for v in values):
                continue  # e.g. a quantile of a histogram with no observations: Grafana draws nothing
            ax.plot(times, values, linewidth=1.2,
                    label=legend(target.get("legendFormat"), series["metric"]))
            drawn += 1
    utc = datetime.timezone.utc
    ax.set_xlim(datetime.datetime.fromtimestamp(start, utc), datetime.datetime.fromtimestamp(end, utc))
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
    ax.set_ylabel(unit_label(unit), fontsize=7)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=datetime.timezone.utc))
    ax.tick_params(labelsize=6)
    ax.grid(True, alpha=0.3)
    if drawn:
        ax.legend(fontsize=6, loc="upper left", ncol=2 if drawn > 4 else 1, framealpha=0.6)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")
    return drawn


def draw_table(ax, panel, prometheus, end):
    rows = []
    for target in panel.get("targets", []):
        expr = substitute_grafana_variables(target["expr"])
        for series in query(prometheus, "query", {"query": expr, "time": end}):
            labels = {k: v for k, v in series["metric"].items() if k != "__name__"}
            rows.append(labels)
    ax.axis("off")
    if not rows:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")
        return 0
    columns = sorted({k for row in rows for k in row})
    cells = [[row.get(c, "") for c in columns] for row in rows[:12]]
    table = ax.table(cellText=cells, colLabels=columns, loc="upper center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1, 1.3)
    return len(rows)


def render(dashboard_path, prometheus, start, end, step, rate_interval, out_dir):
    with open(dashboard_path) as f:
        dashboard = json.load(f)
    panels = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    # Grafana's grid: 24 columns, rows of 30 px; here a row is 0.4 inch.
    width, row_height, header = 16.0, 0.4, 0.6
    height = rows * row_height + header
    fig = plt.figure(figsize=(width, height))
    counts = {}
    for panel in panels:
        g = panel["gridPos"]
        # Room inside each cell for the title (0.3 in), tick labels (0.3 in) and the y label.
        left = g["x"] / 24 * width + 0.55
        bottom = height - header - (g["y"] + g["h"]) * row_height + 0.35
        ax = fig.add_axes([left / width, bottom / height,
                           (g["w"] / 24 * width - 0.8) / width,
                           (g["h"] * row_height - 0.7) / height])
        ax.set_title(panel["title"], fontsize=9, loc="left")
        if panel["type"] == "table":
            counts[panel["title"]] = draw_table(ax, panel, prometheus, end)
        else:
            counts[panel["title"]] = draw_timeseries(ax, panel, prometheus, start, end, step,
                                                     rate_interval)
    fig.suptitle(f"{dashboard['title']} - panels drawn from Prometheus data by "
                 "scripts/render-dashboards.py (not a Grafana screenshot)", fontsize=11,
                 y=1 - 0.25 / height)
    name = os.path.splitext(os.path.basename(dashboard_path))[0]
    out = os.path.join(out_dir, f"dashboard-{name}.png")
    fig.savefig(out, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return out, counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--start", type=float, required=True, help="unix seconds")
    parser.add_argument("--end", type=float, required=True, help="unix seconds")
    parser.add_argument("--step", default="2s")
    parser.add_argument("--rate-interval", default="1m", help="what $__rate_interval becomes")
    parser.add_argument("--out", required=True, help="directory for dashboard-<name>.png")
    parser.add_argument("dashboards", nargs="+")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for path in args.dashboards:
        out, counts = render(path, args.prometheus, args.start, args.end, args.step,
                             args.rate_interval, args.out)
        print(out)
        for title, count in counts.items():
            print(f"  {count:3d} series  {title}")


if __name__ == "__main__":
    main()
