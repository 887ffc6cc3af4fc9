"""`python -m figures.report`: every record and every figure in one static HTML page.

    python -m figures.report --results results --out report-out [--where recipe=quick]

The page opens from disk with no server and no network: the figures are PNGs embedded as
data URIs, the styles and the script (vanilla JavaScript: sort by any column, filter by
dataset, method and norm) are inline. It lists every readable record, one table row each,
with the command that reproduces it, and the warnings: damaged and foreign files, and the
collapsed or diverged runs (`realdata.health.record_health`), which the figures draw hollow
and leave out of their summaries.
"""
from __future__ import annotations

import argparse
import base64
import html
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from figures.records import Results, health_warning, load_results, metric_value, parse_where
from figures.reproduce import reproduce_command
from figures.spec import render
from figures.style import eps_formatter, method_sort_key
from realdata.errors import UserError, run_main
from realdata.health import record_health

REPORT_NAME = "report.html"


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    numeric: bool = False


COLUMNS = (
    Column("kind", "kind"), Column("dataset", "dataset"), Column("method", "method"), Column("norm", "norm"),
    Column("eps", "ε", True), Column("seed", "seed", True),
    Column("standard_error", "standard error", True), Column("robust_error", "robust error", True),
    Column("certified_error", "certified error", True), Column("acc_disc", "accuracy discrepancy", True),
    Column("unstable_fraction", "unstable fraction", True), Column("flags", "flags"),
    Column("wall_time_s", "wall time (s)", True), Column("command", "command"),
)
METRIC_KEYS = ("standard_error", "robust_error", "certified_error", "acc_disc", "unstable_fraction")
FILTERS = ("dataset", "method", "norm")


def flags(record) -> str:
    """What a reader must know before trusting the row: health, resumption."""
    out = []
    if record_health(record):
        out.append(record_health(record))
    if record.get("resumed_from"):
        out.append(f"resumed from epoch {record['resumed_from']}")
    return "; ".join(out)


def eps_formatters(records) -> dict:
    """One ε formatter per dataset, from all its budgets: k/255 only when every budget of the
    dataset is a whole number of 255ths (so digits' 0.2 does not read as 51/255)."""
    budgets: dict = {}
    for rec in records:
        config = rec.get("config") or {}
        if isinstance(config.get("eps"), (int, float)):
            budgets.setdefault(config.get("dataset") or rec.get("kind"), []).append(config["eps"])
    return {dataset: eps_formatter(values) for dataset, values in budgets.items()}


def row(record, formatters=None) -> dict:
    """`{column key: (sort value, shown text)}` for one record; `formatters` from `eps_formatters`."""
    config = record.get("config") or {}
    cells = {"kind": record.get("kind", ""), "dataset": config.get("dataset") or record.get("kind", ""),
             "method": config.get("method") or "", "norm": config.get("norm") or ""}
    out = {k: (v, v) for k, v in cells.items()}
    eps = config.get("eps")
    fmt = (formatters or {}).get(cells["dataset"]) or eps_formatter([eps] if isinstance(eps, (int, float)) else [])
    out["eps"] = (eps, fmt(eps)) if isinstance(eps, (int, float)) else (None, "")
    seed = record.get("seed", config.get("seed"))
    out["seed"] = (seed, str(seed) if seed is not None else "")
    for key in METRIC_KEYS:
        value = metric_value(record, key)
        out[key] = (value, "" if value is None else f"{value:.3f}")
    wall = record.get("wall_time_s")
    wall = wall if isinstance(wall, (int, float)) and not isinstance(wall, bool) else None
    out["wall_time_s"] = (wall, "" if wall is None else f"{wall:.1f}")
    out["flags"] = (flags(record),) * 2
    command = reproduce_command(record) or ""
    out["command"] = (command, command)
    return out


def sorted_records(results: Results) -> list:
    def key(rec):
        c = rec.get("config") or {}
        return (rec.get("kind", ""), str(c.get("dataset", "")), method_sort_key(str(c.get("method", ""))),
                str(c.get("norm", "")), float(c.get("eps") or 0), rec.get("seed") or 0)
    return sorted((r for recs in results.by_kind.values() for r in recs), key=key)


def warnings(results: Results) -> list[str]:
    """Damaged and foreign files (load problems), then the collapsed or diverged runs."""
    every = [r for recs in results.by_kind.values() for r in recs]
    health = health_warning(every)
    return list(results.problems) + ([health] if health else [])


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


# --------------------------------------------------------------------------- HTML

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#222}
h1{color:#0072B2;margin-bottom:.2em} h2{color:#0072B2;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:.9em}
.warnings li{color:#8a4b00}
.controls label{margin-right:1.2em}
table{border-collapse:collapse;font-size:.85em;width:100%}
th,td{border-bottom:1px solid #e4e4e4;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f2f6fa;cursor:pointer;position:sticky;top:0;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"} th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.flagged td{background:#fff4e5}
code{font-size:.85em;word-break:break-all}
details summary{cursor:pointer;color:#0072B2}
figure{margin:1.5em 0} figure img{max-width:100%;border:1px solid #eee}
figcaption ul{font-size:.85em;color:#444}
"""

SCRIPT = """
(function(){
  const table=document.getElementById('records'), body=table.tBodies[0];
  const rows=Array.from(body.rows), shown=document.getElementById('shown');
  table.querySelectorAll('th').forEach((th,i)=>th.addEventListener('click',()=>{
    const asc=th.getAttribute('aria-sort')!=='ascending';
    table.querySelectorAll('th').forEach(h=>h.removeAttribute('aria-sort'));
    th.setAttribute('aria-sort',asc?'ascending':'descending');
    const num=th.dataset.numeric==='1';
    const key=r=>{const v=r.cells[i].dataset.v; return num?(v===''?NaN:parseFloat(v)):v;};
    rows.sort((a,b)=>{const x=key(a),y=key(b);
      if(num){if(isNaN(x))return 1; if(isNaN(y))return -1; return asc?x-y:y-x;}
      return asc?x.localeCompare(y):y.localeCompare(x);});
    rows.forEach(r=>body.appendChild(r));
  }));
  const selects=Array.from(document.querySelectorAll('select[data-filter]'));
  function apply(){
    let n=0;
    rows.forEach(r=>{const ok=selects.every(s=>!s.value||r.dataset[s.dataset.filter]===s.value);
      r.hidden=!ok; if(ok)n++;});
    shown.textContent=n;
  }
  selects.forEach(s=>s.addEventListener('change',apply));
  apply();
})();
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def table_html(records) -> str:
    head = "".join(f'<th data-key="{c.key}" data-numeric="{int(c.numeric)}">{_e(c.title)}</th>' for c in COLUMNS)
    body, formatters = [], eps_formatters(records)
    for rec in records:
        cells = row(rec, formatters)
        attrs = " ".join(f'data-{k}="{_e(cells[k][0])}"' for k in FILTERS)
        css = ' class="flagged"' if record_health(rec) else ""
        tds = []
        for c in COLUMNS:
            value, text = cells[c.key]
            sort = "" if value is None else (repr(float(value)) if c.numeric else str(value))
            content = (f"<details><summary>show</summary><code>{_e(text)}</code></details>"
                       if c.key == "command" and text else _e(text))
            tds.append(f'<td data-v="{_e(sort)}"{" class=num" if c.numeric else ""}>{content}</td>')
        body.append(f'<tr {attrs}{css} title="{_e(rec.get("_path", ""))}">{"".join(tds)}</tr>')
    return (f'<table id="records"><thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(body)
            + "\n</tbody></table>")


def filters_html(records) -> str:
    parts = []
    for key in FILTERS:
        values = sorted({str(row(r)[key][0]) for r in records} - {""})
        options = '<option value="">all</option>' + "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in values)
        parts.append(f'<label>{key} <select data-filter="{key}">{options}</select></label>')
    return '<div class="controls">' + "".join(parts) + "</div>"


def figure_html(title: str, png: Path, summary) -> str:
    lines = "".join(f"<li>{_e(line)}</li>" for line in summary)
    return (f'<figure><h3>{_e(title)}</h3><img alt="{_e(title)}" src="{data_uri(png)}">'
            f"<figcaption><ul>{lines}</ul></figcaption></figure>")


def page(results: Results, figures: list[str], records: list, generated: str) -> str:
    warn = warnings(results)
    warn_html = ('<ul class="warnings">' + "".join(f"<li>{_e(w)}</li>" for w in warn) + "</ul>"
                 if warn else "<p>None: every file is a readable record and no run collapsed or diverged.</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Results report — {_e(results.directory)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body>
<h1>Results report</h1>
<p class="meta">{len(records)} records from <code>{_e(results.directory)}</code>, written by
<code>python -m figures.report</code> on {_e(generated)}. Click a column title to sort; a shaded row is a
collapsed or diverged run.</p>
<h2>Warnings</h2>
{warn_html}
<h2>Records</h2>
{filters_html(records)}
<p class="meta">showing <span id="shown">{len(records)}</span> of {len(records)} records</p>
{table_html(records)}
<h2>Figures</h2>
{"".join(figures)}
<script>{SCRIPT}</script>
</body></html>
"""


# --------------------------------------------------------------------------- command line

def figure_specs(theory_grid: int) -> dict:
    """Every figure the poster draws, by name (the poster's own list)."""
    from figures.poster import figure_specs as poster_specs
    from figures.theorem import TheoremSetting
    return poster_specs(TheoremSetting(grid=theory_grid))


def write_report(results: Results, out_dir, dpi: int = 100, theory_grid: int = 41, log=print) -> Path:
    """Render every figure into `<out_dir>/figures/` and write `<out_dir>/report.html`."""
    out_dir = Path(out_dir)
    figures = []
    for name, spec in figure_specs(theory_grid).items():
        rendered = render(spec, results, out_dir / "figures", dpi=dpi)
        figures.append(figure_html(spec.title, rendered.paths[0], rendered.summary))
        log(f"report: drew {name}")
    records = sorted_records(results)
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    path = out_dir / REPORT_NAME
    path.write_text(page(results, figures, records, generated), encoding="utf-8")
    return path


def build_parser() -> argparse.ArgumentParser:
    from figures.theorem import TheoremSetting
    parser = argparse.ArgumentParser(
        prog="python -m figures.report",
        description="Write one self-contained HTML page (opens from disk: no server, no network) with a "
                    "sortable, filterable table of every result record (dataset, method, norm, ε, seed, "
                    "standard/robust/certified error, accuracy discrepancy, unstable fraction, flags, wall time, "
                    "the command that reproduces it), every figure embedded, and the warnings (damaged and "
                    "foreign files, collapsed or diverged runs). Reads records only; never trains.",
        epilog="Example: python -m figures.report --results results --out report-out   "
               "(then open report-out/report.html)")
    parser.add_argument("--results", default="results", help="directory of result records (default: results/)")
    parser.add_argument("--out", default="report-out",
                        help=f"directory for {REPORT_NAME} and the figures' PNG/PDF files (default: report-out/)")
    parser.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                        help="leave out records whose config has KEY with another value (repeatable), as in "
                             "python -m figures.poster")
    parser.add_argument("--dpi", type=int, default=100, help="resolution of the embedded figures (default: 100)")
    parser.add_argument("--theory-grid", type=int, default=TheoremSetting.grid,
                        help=f"cells per axis of the theorem's map (default: {TheoremSetting.grid})")
    parser.add_argument("--quiet", action="store_true", help="print only warnings and the report's path")
    return parser


def check_args(args) -> None:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a directory for the report.")
    if args.dpi <= 0:
        raise UserError(f"--dpi must be a positive integer, got {args.dpi}; e.g. --dpi 100.")
    if args.theory_grid < 2:
        raise UserError(f"--theory-grid must be at least 2, got {args.theory_grid}.")
    results = Path(args.results)
    if not results.is_dir():
        raise UserError(f"--results {results} is not a directory of records; pass the directory your experiments "
                        "wrote to (their --out).")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    where = parse_where(args.where)
    results = load_results(args.results, where)
    for line in warnings(results):
        print(f"warning: {line}", file=sys.stderr)
    log = (lambda *a, **k: None) if args.quiet else print
    path = write_report(results, args.out, dpi=args.dpi, theory_grid=args.theory_grid, log=log)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
