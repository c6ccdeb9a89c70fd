"""Sphinx settings of the book that a configuration value cannot express, and its one directive.

``run-times`` (on the instructors' page) writes the table of each chapter's run time from the
measured times in ``results/notebook-times-quick.json`` (written by ``bash .ci/run``), with each
chapter's title and number of exercises read from the notebook itself: nothing in it is kept by hand.

Sphinx reads (and myst-nb executes) documents in alphabetical order; the book reads them in the
order of ``_toc.yml``, so that the comparison chapters run after the chapters whose saved
results they show.

With Sphinx 7.4, inline scripts that extensions add while documents are read (sphinx-thebe's,
sphinx-togglebutton's) reach every page twice, once with the file name ``None`` and once with
``""``; the second ``const THEBE_JS_URL`` is then a console error. The book drops any script
whose source and attributes repeat an earlier one.

sphinx-book-theme leaves the colour mode empty until a reader picks one (it has no option for a
default), which pydata-sphinx-theme's script reports as a console error on a first visit ("Got
invalid theme mode"); the book starts such a visit in "auto", the mode the theme falls back to.
"""
import json
import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

START_IN_AUTO_MODE = 'if (!document.documentElement.dataset.mode) { document.documentElement.dataset.mode = "auto"; }'


def read_in_toc_order(app, env, docnames):
    toc = Path(app.config.external_toc_path)
    toc = toc if toc.is_absolute() else Path(app.srcdir) / toc
    order = {name: position for position, name in enumerate(
        [app.config.root_doc, *re.findall(r"file:\s*([^\s#]+)", toc.read_text())])}
    docnames.sort(key=lambda name: (order.get(name, len(order)), name))


def drop_repeated_scripts(app, pagename, templatename, context, doctree):
    scripts, seen = [], set()
    for script in context.get("script_files", []):
        key = (script.filename or "", tuple(sorted(script.attributes.items())))  # inline: None or ""
        if key not in seen:
            seen.add(key)
            scripts.append(script)
    context["script_files"] = scripts


TIMES_FILE = "results/notebook-times-quick.json"


class RunTimes(Directive):
    """A table: chapter, measured quick-profile time, number of exercises; then the times' source."""

    def run(self):
        source = Path(self.state.document.settings.env.srcdir)
        times_path = source / TIMES_FILE
        self.state.document.settings.env.note_dependency(str(times_path))
        measured = json.loads(times_path.read_text()) if times_path.is_file() else {}
        toc = re.findall(r"file:\s*([^\s#]+)", (source / "_toc.yml").read_text())
        rows = []
        for entry in toc:
            notebook = source / f"{entry}.ipynb"
            if not notebook.is_file():
                continue
            cells = json.loads(notebook.read_text())["cells"]
            text = "".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")
            title = re.search(r"^# (.+)$", text, re.MULTILINE).group(1).strip()
            seconds = measured.get(f"{entry}.ipynb")
            time = "not measured yet" if seconds is None else f"{seconds:.0f} s"
            rows.append(f"| {{doc}}`{title} </{entry}>` | {time} | {text.count('{exercise}')} |")
        markdown = ["| chapter | quick profile, 2 CPU cores | exercises |", "|---|---|---|", *rows]
        if measured:
            markdown += ["", f"All {len(measured)} notebooks together: {sum(measured.values()) / 60:.0f} minutes."]
        else:
            markdown += ["", f"No measured times yet: `{TIMES_FILE}` is written by `bash .ci/run`."]
        table = nodes.container()  # the page is MyST Markdown, so the nested text is parsed as MyST
        self.state.nested_parse(StringList(markdown, source=str(times_path)), self.content_offset, table)
        return [table]


def setup(app):
    app.add_directive("run-times", RunTimes)
    app.connect("env-before-read-docs", read_in_toc_order)
    app.add_js_file(None, body=START_IN_AUTO_MODE, priority=100)
    app.connect("html-page-context", drop_repeated_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
