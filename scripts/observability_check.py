"""Offline checks of synctv's operator files: the Prometheus alerting rules
(deploy/prometheus/*.yml) and the Grafana dashboards (deploy/grafana/*.json).

- `promtool check rules` accepts every rules file;
- every dashboard is valid JSON, and every panel query is a non-empty expression;
- every metric a rule or a dashboard query names is one the server exports. The exported
  names are read from the server's code (every `counter!`, `gauge!` and `histogram!`
  call in synctv-*/src), never from a hand-kept list; a histogram is exported with its
  `_bucket`, `_sum` and `_count` series (or, without buckets, as a summary).

Usage: observability_check.py REPO_ROOT [--promtool PATH]
Prints one line per check and ends with "N passed, M failed"; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

# Same output as the deployment checks (this script sits beside deploy_check.py).
from deploy_check import Report

MACRO = re.compile(r'\b(counter|gauge|histogram)!\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"', re.S)

# PromQL words that are not metric names.
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp",
    "clamp_max", "clamp_min", "count_over_time", "day_of_month", "day_of_week", "delta",
    "deriv", "exp", "floor", "histogram_quantile", "holt_winters", "hour", "idelta",
    "increase", "irate", "label_join", "label_replace", "last_over_time", "ln", "log10",
    "log2", "max_over_time", "min_over_time", "minute", "month", "predict_linear",
    "present_over_time", "quantile_over_time", "rate", "resets", "round", "scalar", "sgn",
    "sort", "sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time",
    "time", "timestamp", "vector", "year",
}
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
            "and", "or", "unless", "inf", "nan"}


def exported_metrics(root: Path) -> set[str]:
    """Every series name the server can export, from the metrics macros in its code."""
    names: set[str] = set()
    for source in root.glob("synctv-*/src/**/*.rs"):
        for kind, name in MACRO.findall(source.read_text(encoding="utf-8")):
            names.add(name)
            if kind == "histogram":
                names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\boffset\s+\d+[smhdwy]", "", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        word = match.group(0)
        # A number's exponent or unit (1e3, 5m) is not a name.
        if match.start() > 0 and text[match.start() - 1].isdigit():
            continue
        if word in FUNCTIONS or word in AGGREGATIONS or word in KEYWORDS:
            continue
        names.add(word)
    return names


def check_names(r: Report, label: str, expr: str, exported: set[str]) -> None:
    names = metric_names(expr)
    unknown = sorted(n for n in names if n not in exported)
    r.check(f"{label}: names only exported metrics", bool(names) and not unknown,
            f"not exported: {unknown}" if unknown else f"no metric in {expr!r}")


def check_rules(r: Report, root: Path, promtool: str, exported: set[str]) -> None:
    files = sorted((root / "deploy" / "prometheus").glob("*.yml"))
    r.check("prometheus: rules files exist", bool(files), "none under deploy/prometheus/")
    for path in files:
        rel = path.relative_to(root)
        done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
        r.check(f"promtool check rules {rel}", done.returncode == 0, (done.stdout + done.stderr).strip())
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in doc.get("groups", []):
            for rule in group.get("rules", []):
                name = rule.get("alert") or rule.get("record")
                check_names(r, f"{rel} {name}", str(rule.get("expr", "")), exported)


def panel_targets(panels: list[dict]):
    for panel in panels:
        yield from ((panel, t) for t in panel.get("targets", []))
        yield from panel_targets(panel.get("panels", []))  # rows hold panels


def check_dashboards(r: Report, root: Path, exported: set[str]) -> None:
    files = sorted((root / "deploy" / "grafana").glob("*.json"))
    r.check("grafana: dashboards exist", bool(files), "none under deploy/grafana/")
    for path in files:
        rel = path.relative_to(root)
        try:
            dash = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            r.check(f"{rel}: valid JSON", False, str(e))
            continue
        r.check(f"{rel}: valid JSON with a title and panels",
                bool(dash.get("title")) and bool(dash.get("panels")), "title or panels missing")
        targets = list(panel_targets(dash.get("panels", [])))
        r.check(f"{rel}: every panel has a query", all(
            any(True for _ in panel_targets([p])) for p in dash.get("panels", []) if p.get("type") != "row"),
            "a panel without targets")
        for panel, target in targets:
            expr = str(target.get("expr", "")).strip()
            label = f"{rel} \"{panel.get('title')}\" {target.get('refId')}"
            if not r.check(f"{label}: has an expression", bool(expr), "empty expr"):
                continue
            check_names(r, label, expr, exported)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--promtool", default="promtool")
    args = parser.parse_args()
    root = args.root.resolve()
    r = Report()
    exported = exported_metrics(root)
    r.check("server code exports metrics", len(exported) > 10, f"only {sorted(exported)}")
    # The extraction itself is checked against names the rules depend on most.
    for expected in ("synctv_refusals_total", "synctv_history_commit_seconds_bucket"):
        r.check(f"extraction finds {expected}", expected in exported, "the macro pattern missed it")
    for bad, why in (("synctv_no_such_metric", "a made-up name"),):
        r.check(f"the name check refuses {why}", bad not in exported and bool(metric_names(f"rate({bad}[5m])")),
                "the check would let it through")
    check_rules(r, root, args.promtool, exported)
    check_dashboards(r, root, exported)
    print(f"{r.passed} passed, {r.failed} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
