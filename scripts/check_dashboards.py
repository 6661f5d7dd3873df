#!/usr/bin/env python3
"""Static checks of the Grafana dashboards in grafana/dashboards/ against the data sources
provisioned in grafana/datasources/datasources.yaml. Python 3.11 standard library only.

Every dashboard must parse, have a uid (unique, at most 40 characters) and a title; every panel,
including panels nested in rows, must name a data source by a uid that datasources.yaml defines
(with the matching type), and so must every query target; every panel other than rows and text
panels must have at least one target, and every target a non-empty query (`expr` for Prometheus
and Loki, `query` for Tempo). Prometheus queries must not filter on `job` (the cluster's scrape
job is `kubernetes-pods`, the local e2e one `doc-classifier`), and every `$variable` they use
must be a dashboard variable whose "All" value (allValue) matches everything.

Usage:
  scripts/check_dashboards.py                          check; exit 1 naming each problem
  scripts/check_dashboards.py --list-prometheus-exprs  check, then print each Prometheus query as
      a JSON line {"dashboard", "panel", "expr", ...} with Grafana's variables replaced by values
      a plain /api/v1/query accepts ($__rate_interval -> 1m, $__interval -> 15s, $__range -> 5m,
      $var -> its allValue); scripts/e2e.py runs each against a real Prometheus
  scripts/check_dashboards.py --self-test              check that broken dashboards are caught
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "grafana/dashboards"
DATASOURCES = ROOT / "grafana/datasources/datasources.yaml"

# Where each data-source type keeps a target's query text.
QUERY_KEY = {"prometheus": "expr", "loki": "expr", "tempo": "query"}
# Panels that query nothing.
NO_QUERY_PANELS = {"row", "text", "dashlist", "news", "welcome"}
# Grafana's built-in interval variables, as a plain Prometheus query needs them.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}
# $name, ${name} and ${name:format}; [[name]] is deprecated and rejected below.
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
JOB_MATCHER = re.compile(r"[{,]\s*job\s*(=~|!~|!=|=)")


# --- data sources -------------------------------------------------------------------------------


def load_datasources(path: Path) -> dict[str, str]:
    """uid -> type of each data source in a provisioning file.

    A minimal reader for the file's own shape (a `datasources:` list whose items have `uid:` and
    `type:` keys at the item's top level), so that the check needs no PyYAML. Keys nested deeper
    (jsonData's `datasourceUid`, ...) are ignored because they sit at a deeper indentation.
    """
    found: dict[str, str] = {}
    item: dict[str, str] | None = None
    item_indent = None
    in_list = False
    for raw in path.read_text().splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            in_list = line.startswith("datasources:")
            continue
        if not in_list:
            continue
        m = re.match(r"^(\s*)- (.*)$", line)
        if m and (item_indent is None or len(m.group(1)) == item_indent):
            item_indent = len(m.group(1))
            item = {}
            found_key = re.match(r"(\w+):\s*(.*)$", m.group(2))
            if found_key:
                item[found_key.group(1)] = found_key.group(2)
            _store(found, item)
            continue
        if item is not None and item_indent is not None and indent == item_indent + 2:
            found_key = re.match(r"\s*(\w+):\s*(.*)$", line)
            if found_key:
                item[found_key.group(1)] = found_key.group(2)
                _store(found, item)
    return found


def _store(found: dict[str, str], item: dict[str, str]) -> None:
    if "uid" in item:
        found[_scalar(item["uid"])] = _scalar(item.get("type", ""))


def _scalar(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


# --- dashboards ---------------------------------------------------------------------------------


def all_panels(dashboard: dict) -> list[dict]:
    """Every panel, including those nested in (collapsed) rows, in order."""
    out = []
    for panel in dashboard.get("panels") or []:
        out.append(panel)
        out.extend(panel.get("panels") or [])
    return out


def variables(dashboard: dict) -> dict[str, dict]:
    return {v.get("name"): v for v in (dashboard.get("templating") or {}).get("list") or []}


def check_dashboard(dashboard: dict, name: str, datasources: dict[str, str]) -> list[str]:
    """Every problem of one dashboard, each naming the dashboard and the panel."""
    problems = []
    title = dashboard.get("title")
    where = f'dashboard {name} ("{title}")'

    def fail(msg: str) -> None:
        problems.append(f"{where}: {msg}")

    if not isinstance(title, str) or not title.strip():
        fail("no title")
    uid = dashboard.get("uid")
    if not isinstance(uid, str) or not uid.strip():
        fail("no uid (Grafana would make one up on every provisioning)")
    elif len(uid) > 40 or not re.fullmatch(r"[A-Za-z0-9_-]+", uid):
        fail(f"uid {uid!r} must be at most 40 letters, digits, '-' or '_'")

    defined = variables(dashboard)
    for var_name, var in defined.items():
        if var.get("type") == "query":
            problems.extend(f"{where}: variable ${var_name}: {p}"
                            for p in _datasource_problems(var.get("datasource"), datasources))
        if var.get("includeAll") and var.get("allValue") in (None, ""):
            fail(f"variable ${var_name} has includeAll but no allValue; set allValue \".*\" so "
                 f"'All' matches every series, not just the values found when the list loaded")

    ids = []
    for panel in all_panels(dashboard):
        ptype = panel.get("type")
        ptitle = panel.get("title") or "(untitled)"
        at = f'panel "{ptitle}" (id {panel.get("id")}, {ptype})'
        ids.append(panel.get("id"))
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
            fail(f"{at}: gridPos needs integer x, y, w and h")
        elif grid["x"] < 0 or grid["w"] <= 0 or grid["x"] + grid["w"] > 24:
            fail(f"{at}: gridPos x {grid['x']} + w {grid['w']} is outside the 24-column grid")
        if ptype in NO_QUERY_PANELS:
            continue
        panel_ds = panel.get("datasource")
        problems.extend(f"{where}: {at}: {p}" for p in _datasource_problems(panel_ds, datasources))
        targets = panel.get("targets") or []
        if not targets:
            fail(f"{at}: no query targets")
            continue
        for target in targets:
            ref = target.get("refId", "?")
            tat = f"{at}, target {ref}"
            target_ds = target.get("datasource")
            ds_problems = _datasource_problems(target_ds, datasources)
            problems.extend(f"{where}: {tat}: {p}" for p in ds_problems)
            if ds_problems:
                continue
            ds_type = datasources[target_ds["uid"]]
            if isinstance(panel_ds, dict) and panel_ds.get("uid") not in (target_ds["uid"], None):
                fail(f"{tat}: data source {target_ds['uid']!r} differs from the panel's "
                     f"{panel_ds.get('uid')!r} (use a single data source per panel)")
            key = QUERY_KEY.get(ds_type)
            if key is None:
                fail(f"{tat}: no known query field for data source type {ds_type!r}")
                continue
            query = target.get(key)
            if not isinstance(query, str) or not query.strip():
                fail(f"{tat}: empty `{key}`")
                continue
            if "[[" in query:
                fail(f"{tat}: deprecated [[variable]] syntax in {query!r}")
            for var in _variables_in(query):
                if var.startswith("__"):
                    continue
                if var not in defined:
                    fail(f"{tat}: ${var} is not a dashboard variable: {query}")
            if ds_type == "prometheus" and JOB_MATCHER.search(query):
                fail(f"{tat}: filters on `job`, which differs between the cluster "
                     f"(kubernetes-pods) and the local e2e Prometheus (doc-classifier): {query}")
    dup = sorted({i for i in ids if ids.count(i) > 1}, key=str)
    if dup:
        fail(f"duplicate panel ids {dup}")
    return problems


def _datasource_problems(ds, datasources: dict[str, str]) -> list[str]:
    if not isinstance(ds, dict) or not ds.get("uid"):
        return [f"no data source reference {{\"type\": ..., \"uid\": ...}} (got {ds!r})"]
    uid = ds["uid"]
    if uid not in datasources:
        return [f"data source uid {uid!r} is not provisioned (known: {sorted(datasources)})"]
    if ds.get("type") and ds["type"] != datasources[uid]:
        return [f"data source uid {uid!r} has type {datasources[uid]!r}, not {ds['type']!r}"]
    return []


def _variables_in(query: str) -> list[str]:
    return [m.group(1) or m.group(2) for m in VARIABLE.finditer(query)]


def substitute(query: str, dashboard: dict) -> str:
    """The query as Prometheus' HTTP API takes it: built-ins and variables replaced."""
    defined = variables(dashboard)

    def value(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name in BUILTINS:
            return BUILTINS[name]
        var = defined.get(name)
        if var is None:
            raise ValueError(f"unknown variable ${name} in {query}")
        if var.get("includeAll") and var.get("allValue"):
            return var["allValue"]
        current = (var.get("current") or {}).get("value")
        if isinstance(current, list):
            current = current[0] if len(current) == 1 else "(" + "|".join(current) + ")"
        if isinstance(current, str) and current and current != "$__all":
            return current
        raise ValueError(f"variable ${name} has neither an allValue nor a current value")

    return VARIABLE.sub(value, query)


def prometheus_exprs(dashboard: dict, datasources: dict[str, str]) -> list[dict]:
    out = []
    for panel in all_panels(dashboard):
        for target in panel.get("targets") or []:
            uid = (target.get("datasource") or {}).get("uid")
            if datasources.get(uid) != "prometheus" or not (target.get("expr") or "").strip():
                continue
            out.append({
                "dashboard": dashboard.get("title"),
                "uid": dashboard.get("uid"),
                "panel": panel.get("title"),
                "refId": target.get("refId"),
                "expr": substitute(target["expr"], dashboard),
            })
    return out


# --- the run ------------------------------------------------------------------------------------


def load_dashboards(folder: Path) -> tuple[list[tuple[str, dict]], list[str]]:
    loaded, problems = [], []
    files = sorted(folder.glob("*.json"))
    if not files:
        problems.append(f"no dashboards (*.json) in {folder}")
    for path in files:
        try:
            dashboard = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            problems.append(f"dashboard {path.name}: not valid JSON: {e}")
            continue
        if not isinstance(dashboard, dict):
            problems.append(f"dashboard {path.name}: the top level is not an object")
            continue
        loaded.append((path.name, dashboard))
    return loaded, problems


def check_all(dashboards: list[tuple[str, dict]], datasources: dict[str, str]) -> list[str]:
    problems = []
    uids: dict[str, str] = {}
    for name, dashboard in dashboards:
        problems.extend(check_dashboard(dashboard, name, datasources))
        uid = dashboard.get("uid")
        if uid in uids:
            problems.append(f"dashboard {name}: uid {uid!r} is also the uid of {uids[uid]}")
        uids.setdefault(uid, name)
    return problems


def summary(dashboards: list[tuple[str, dict]], datasources: dict[str, str]) -> str:
    panels = [p for _, d in dashboards for p in all_panels(d) if p.get("type") != "row"]
    by_type: dict[str, int] = {}
    for p in panels:
        for t in p.get("targets") or []:
            kind = datasources.get((t.get("datasource") or {}).get("uid"), "?")
            by_type[kind] = by_type.get(kind, 0) + 1
    queries = ", ".join(f"{n} {k}" for k, n in sorted(by_type.items()))
    return f"{len(dashboards)} dashboards, {len(panels)} panels, queries: {queries}"


def self_test() -> int:
    """Broken dashboards must fail with a message naming the dashboard and the panel."""
    ds = {"prometheus": "prometheus", "loki": "loki", "tempo": "tempo"}
    prom = {"type": "prometheus", "uid": "prometheus"}
    grid = {"x": 0, "y": 0, "w": 12, "h": 8}

    def board(*panels, **extra):
        return {"uid": "t", "title": "T", "panels": list(panels), **extra}

    def panel(pid=1, title="P", ds_ref=prom, targets=None, **extra):
        if targets is None:
            targets = [{"refId": "A", "datasource": prom, "expr": "up"}]
        return {"id": pid, "type": "timeseries", "title": title, "datasource": ds_ref,
                "gridPos": grid, "targets": targets, **extra}

    route = {"name": "route", "type": "query", "datasource": prom, "includeAll": True,
             "allValue": ".*", "query": "label_values(model_info, instance)"}
    cases = {
        "a good dashboard": (board(panel()), None),
        "no uid": ({"title": "T", "panels": [panel()]}, "no uid"),
        "no title": ({"uid": "t", "panels": [panel()]}, "no title"),
        "unknown panel datasource": (
            board(panel(ds_ref={"type": "prometheus", "uid": "nope"})), "'nope' is not provisioned"),
        "datasource as a name string": (board(panel(ds_ref="Prometheus")), "no data source reference"),
        "target without datasource": (
            board(panel(targets=[{"refId": "A", "expr": "up"}])), "target A: no data source"),
        "empty expr": (
            board(panel(targets=[{"refId": "A", "datasource": prom, "expr": " "}])), "empty `expr`"),
        "no targets": (board(panel(targets=[])), "no query targets"),
        "tempo target with expr only": (
            board(panel(ds_ref={"type": "tempo", "uid": "tempo"},
                        targets=[{"refId": "A", "datasource": {"type": "tempo", "uid": "tempo"},
                                  "expr": "{}"}])), "empty `query`"),
        "type mismatch": (
            board(panel(ds_ref={"type": "loki", "uid": "prometheus"})), "has type 'prometheus'"),
        "job filter": (
            board(panel(targets=[{"refId": "A", "datasource": prom,
                                  "expr": 'up{job="kubernetes-pods"}'}])), "filters on `job`"),
        "undefined variable": (
            board(panel(targets=[{"refId": "A", "datasource": prom, "expr": 'up{x=~"$nope"}'}])),
            "$nope is not a dashboard variable"),
        "All without allValue": (
            board(panel(), templating={"list": [{**route, "allValue": None}]}), "no allValue"),
        "nested broken panel in a collapsed row": (
            board({"id": 9, "type": "row", "title": "R", "collapsed": True, "gridPos": grid,
                   "panels": [panel(pid=2, title="Inner", targets=[])]}),
            'panel "Inner" (id 2, timeseries): no query targets'),
        "duplicate ids": (board(panel(), panel(title="Q")), "duplicate panel ids [1]"),
        "off the grid": (board(panel(gridPos={"x": 20, "y": 0, "w": 8, "h": 4})),
                         "outside the 24-column grid"),
    }
    failed = 0
    for what, (dashboard, expected) in cases.items():
        problems = check_dashboard(dashboard, "selftest.json", ds)
        if expected is None:
            ok = not problems
        else:
            ok = any(expected in p and "selftest.json" in p for p in problems)
        if not ok:
            failed += 1
            print(f"self-test FAILED: {what}: expected {expected!r}, got {problems}", file=sys.stderr)

    # Variable and interval substitution for --list-prometheus-exprs.
    dashboard = board(panel(targets=[{"refId": "A", "datasource": prom, "expr":
                      'sum(rate(x{r=~"$route", s=~"${route}"}[$__rate_interval])) '
                      '+ y[$__interval] + z[${__range}]'}]),
                      templating={"list": [route]})
    got = prometheus_exprs(dashboard, ds)
    want = 'sum(rate(x{r=~".*", s=~".*"}[1m])) + y[15s] + z[5m]'
    if [g["expr"] for g in got] != [want] or got[0]["panel"] != "P" or got[0]["dashboard"] != "T":
        failed += 1
        print(f"self-test FAILED: substitution: got {got}, want {want!r}", file=sys.stderr)

    # The minimal YAML reader against the real provisioning file's shape.
    sample = ROOT / "grafana/datasources/datasources.yaml"
    if sample.exists():
        read = load_datasources(sample)
        expected = {"prometheus": "prometheus", "loki": "loki", "tempo": "tempo"}
        if any(read.get(uid) != kind for uid, kind in expected.items()):
            failed += 1
            print(f"self-test FAILED: {sample} read as {read}", file=sys.stderr)
    total = len(cases) + 2
    print(f"self-test: {total - failed}/{total} passed")
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dashboards", type=Path, default=DASHBOARDS, help="folder of *.json dashboards")
    p.add_argument("--datasources", type=Path, default=DATASOURCES, help="provisioning file")
    p.add_argument("--list-prometheus-exprs", action="store_true",
                   help="print each Prometheus query as a JSON line, variables substituted")
    p.add_argument("--self-test", action="store_true", help="run the checker's own tests")
    args = p.parse_args()
    if args.self_test:
        return self_test()

    datasources = load_datasources(args.datasources)
    dashboards, problems = load_dashboards(args.dashboards)
    if not datasources:
        problems.append(f"no data sources with a uid found in {args.datasources}")
    problems += check_all(dashboards, datasources)
    if problems:
        for problem in problems:
            print(f"check_dashboards: {problem}", file=sys.stderr)
        print(f"check_dashboards: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    if args.list_prometheus_exprs:
        for _, dashboard in dashboards:
            for row in prometheus_exprs(dashboard, datasources):
                print(json.dumps(row))
        return 0
    print(f"check_dashboards: ok: {summary(dashboards, datasources)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
