"""`python -m figures.report`: one self-contained HTML page; its table, parsed back with
html.parser, lists every record with the record's own numbers; the warnings name damaged,
foreign and collapsed files; bad input is one sentence and exit 2."""
import json
import shlex
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from figures import report
from figures.poster import FIGURE_NAMES
from figures.reproduce import COMMAND_MODULES, reproduce_command
from figures.style import eps_formatter
from realdata.errors import run_main

TINY = ["--theory-grid", "2", "--dpi", "20", "--quiet"]


class Page(HTMLParser):
    """The table's header and rows (cell text and data-* attributes), the images' sources,
    every src/href, the warnings and whether any script is loaded from elsewhere."""

    def __init__(self):
        super().__init__()
        self.header, self.rows, self.images, self.links, self.warnings = [], [], [], [], []
        self._cell = self._row = self._in_warnings = None
        self._text = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if key in attrs:
                self.links.append(attrs[key])
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "ul" and attrs.get("class") == "warnings":
            self._in_warnings = True
        elif tag == "tr" and self._cell is None:
            self._row = {"attrs": attrs, "cells": []}
        elif tag in ("td", "th"):
            self._cell, self._text = attrs, []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            text = "".join(self._text).strip()
            if tag == "th":
                self.header.append(text)
            else:
                self._row["cells"].append((text, self._cell.get("data-v")))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row["cells"]:
                self.rows.append(self._row)
            self._row = None
        elif tag == "ul":
            self._in_warnings = False

    def handle_data(self, data):
        if self._cell is not None:
            self._text.append(data)
        elif self._in_warnings and data.strip():
            self.warnings.append(data.strip())


@pytest.fixture(scope="module")
def written(results_dir, tmp_path_factory):
    """The fixture records plus a damaged, a foreign and a collapsed one, reported once."""
    results = tmp_path_factory.mktemp("report") / "results"
    shutil.copytree(results_dir, results)
    (results / "broken.json").write_text("{")
    (results / "foreign.json").write_text(json.dumps({"hello": "world"}))
    collapsed = next(p for p in sorted(results.glob("digits-coap-*.json")))
    record = json.loads(collapsed.read_text())
    record.update(num_classes=10)
    record["metrics"]["train_error"] = 0.9
    collapsed.write_text(json.dumps(record))
    out = results.parent / "out"
    assert run_main(report.main, ["--results", str(results), "--out", str(out)] + TINY) == 0
    page = Page()
    page.feed((out / report.REPORT_NAME).read_text(encoding="utf-8"))
    records = [json.loads(p.read_text()) for p in results.glob("*.json") if p.name not in ("broken.json",
                                                                                        "foreign.json")]
    return page, records, record


@pytest.mark.slow  # shares the report drawn once (every figure)
def test_every_record_is_one_row_with_its_numbers(written):
    page, records, _ = written
    assert page.header == [c.title for c in report.COLUMNS]
    assert len(page.rows) == len(records)
    col = {c.key: i for i, c in enumerate(report.COLUMNS)}
    shown = {}
    for r in page.rows:
        cells = r["cells"]
        key = (cells[col["kind"]][0], cells[col["method"]][0], cells[col["seed"]][0], cells[col["eps"]][1],
               cells[col["dataset"]][0], cells[col["command"]][0])
        shown[key] = r
    for rec in records:
        c = rec["config"]
        eps_sort = repr(float(c["eps"])) if "eps" in c else ""
        row = [r for k, r in shown.items() if k[0] == rec["kind"] and k[1] == c.get("method", "")
               and k[2] == str(rec["seed"]) and k[3] == eps_sort and k[4] == c.get("dataset", rec["kind"])]
        # the fixture's records are unique on (kind, method, seed, ε, dataset) except linear's n
        assert row, f"no row for {rec['name']} {c}"
        cells = row[0]["cells"]
        if rec["kind"] != "linear":
            assert len(row) == 1
            for key in report.METRIC_KEYS:
                value = rec["metrics"].get(key)
                assert cells[col[key]][0] == ("" if value is None else f"{value:.3f}")
            budgets = [r["config"]["eps"] for r in records if r["config"].get("dataset", r["kind"])
                       == c.get("dataset", rec["kind"]) and "eps" in r["config"]]
            assert cells[col["eps"]][0] == eps_formatter(budgets)(c["eps"])
        # the filters read the row's data attributes
        assert row[0]["attrs"]["data-dataset"] == c.get("dataset", rec["kind"])
        assert row[0]["attrs"]["data-method"] == c.get("method", "")


@pytest.mark.slow  # shares the report drawn once (every figure)
def test_the_collapsed_record_is_flagged_and_warned(written):
    page, _, record = written
    col = [c.key for c in report.COLUMNS].index("flags")
    flagged = [r for r in page.rows if r["cells"][col][0] == "collapsed"]
    assert len(flagged) == 1 and flagged[0]["attrs"]["class"] == "flagged"
    assert any(w.startswith("1 run collapsed or diverged") and f"seed {record['seed']} (collapsed)" in w
               for w in page.warnings)


@pytest.mark.slow  # shares the report drawn once (every figure)
def test_damaged_and_foreign_files_are_warnings(written):
    page, _, _ = written
    assert any("broken.json is corrupt" in w for w in page.warnings)
    assert any("foreign.json is not a result record" in w for w in page.warnings)


@pytest.mark.slow  # shares the report drawn once (every figure)
def test_the_page_is_self_contained(written):
    page, _, _ = written
    assert len(page.images) == len(FIGURE_NAMES) and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert all(link.startswith("data:") for link in page.links)  # no file, server or network reference


def test_commands_reproduce_the_config(results_dir):
    """Each kind's command parses with its own experiment's parser, back to the record's values."""
    import importlib
    seen = set()
    for path in sorted(results_dir.glob("*.json")):
        record = json.loads(path.read_text())
        if record["kind"] in seen:
            continue
        seen.add(record["kind"])
        words = shlex.split(reproduce_command(record))
        assert words[:3] == ["python", "-m", COMMAND_MODULES[record["kind"]]]
        args = importlib.import_module(words[2]).build_parser().parse_args(words[3:])
        if record["kind"] == "train":
            for key in ("dataset", "method", "norm", "epochs"):
                assert getattr(args, key) == record["config"][key]
            assert args.eps == pytest.approx(record["config"]["eps"], abs=0)
        else:
            assert str(args.methods) == record["config"]["method"] and str(args.seeds) == str(record["seed"])
    assert seen == {"train", "spheres", "linear"}
    assert reproduce_command({"kind": "tightness", "config": {}}) is None


def test_help_and_bad_input(tmp_path, capsys):
    out = subprocess.run([sys.executable, "-m", "figures.report", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0
    for option in ("--results", "--out", "--where", "--dpi", "--theory-grid", "--quiet"):
        assert option in out.stdout
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for argv, message in ((["--results", str(tmp_path / "none")], "is not a directory"),
                          (["--results", str(tmp_path), "--out", str(a_file)], "is a file"),
                          (["--results", str(tmp_path), "--dpi", "0"], "positive")):
        assert run_main(report.main, argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.strip().count("\n") == 0
    assert not (tmp_path / "report-out").exists()
