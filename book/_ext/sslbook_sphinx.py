r"""Sphinx settings of the book that a configuration value cannot express, and its one directive.

``run-times`` (on the instructors' page) writes the table of each chapter's run time from the
measured times in ``results/notebook-times-quick.json`` (from a ``bash .ci/run``), with each
chapter's title and number of exercises read from the notebook itself: nothing in it is kept by hand.
``variant-experiments`` lists the exercises that retrain a variant of a chapter's run, with what
they change and the training time of the run they repeat (the fastest run of the committed sweep).

Sphinx reads (and myst-nb executes) documents in alphabetical order; the book reads them in the
order of ``_toc.yml``, so that the comparison chapters run after the chapters whose saved
results they show.

With Sphinx 7.4, inline scripts that extensions add while documents are read (sphinx-thebe's,
sphinx-togglebutton's) reach every page twice, once with the file name ``None`` and once with
``""``; the second ``const THEBE_JS_URL`` is then a console error. The book drops any script
whose source and attributes repeat an earlier one.

MathJax is part of the build: ``_config.yml`` points ``mathjax_path`` at ``_static/mathjax``, and
when the HTML is written the book copies MathJax 3's es5 build there from the Python package
``django-static-mathjax`` (in the ``book`` extra; plain files, it needs no Django), so that a
classroom without a network sees typeset equations, not raw ``\(\tau\)``.

sphinx-book-theme leaves the colour mode empty until a reader picks one (it has no option for a
default), which pydata-sphinx-theme's script reports as a console error on a first visit ("Got
invalid theme mode"); the book starts such a visit in "auto", the mode the theme falls back to.
"""
import ast
import importlib.util
import json
import re
import shutil
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
        markdown = ["| chapter | quick profile, 1 of 2 CPU cores | exercises |", "|---|---|---|", *rows]
        if measured:
            markdown += ["", f"All {len(measured)} notebooks together: {sum(measured.values()) / 60:.0f} minutes."]
        else:
            markdown += ["", f"No measured times yet: `{TIMES_FILE}` is missing."]
        table = nodes.container()  # the page is MyST Markdown, so the nested text is parsed as MyST
        self.state.nested_parse(StringList(markdown, source=str(times_path)), self.content_offset, table)
        return [table]


SWEEP_FOLDER = "results/sweep-quick"
MAIN_RUN = re.compile(r'chapter\.method_run\("(\w+)", profile, train_data\)')
EXERCISE_LABEL = re.compile(r"^:label:\s*(\S+)", re.MULTILINE)


def variant_changes(code: str) -> list[str]:
    """The settings each ``chapter.train_variant(...)`` call in ``code`` changes, as ``name=value``
    text (IPython's magic lines are left out)."""
    lines = ["" if line.lstrip().startswith("%") else line for line in code.splitlines()]
    return [", ".join(f"{keyword.arg}={ast.unparse(keyword.value)}" for keyword in node.keywords)
            for node in ast.walk(ast.parse("\n".join(lines)))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "train_variant"]


def variant_experiments(source: Path) -> list[str]:
    """The Markdown table of the exercises that retrain a variant of a chapter's run (the
    ``train_variant`` calls of their solutions), in book order:
    chapter, exercise, what it changes, and the training time of the run it repeats (the fastest of the
    quick-profile sweep's runs), all read from the notebooks and ``results/sweep-quick/``."""
    rows = []
    for entry in re.findall(r"file:\s*([^\s#]+)", (source / "_toc.yml").read_text()):
        notebook = source / f"{entry}.ipynb"
        if not notebook.is_file():
            continue
        label, in_solution, experiments, markdown, code = None, False, [], [], []
        for cell in json.loads(notebook.read_text())["cells"]:
            text = "".join(cell["source"])
            if cell["cell_type"] == "markdown":
                markdown.append(text)
                if "{exercise}" in text:
                    label = EXERCISE_LABEL.search(text).group(1)
                in_solution = "{solution-start}" in text or (in_solution and "{solution-end}" not in text)
            elif cell["cell_type"] == "code":
                code.append(text)
                if in_solution:  # a variant the chapter trains in its own text is not an exercise
                    experiments += [(label, change) for change in variant_changes(text)]
        if not experiments:
            continue
        title = re.search(r"^# (.+)$", "\n".join(markdown), re.MULTILINE).group(1).strip()
        sweep = source / SWEEP_FOLDER / f"{MAIN_RUN.search(chr(10).join(code)).group(1)}.json"
        seconds = [run["seconds"] for run in json.loads(sweep.read_text())["runs"]] if sweep.is_file() else []
        time = f"{min(seconds):.0f} s" if seconds else "not measured yet"
        rows += [f"| {{doc}}`{title} </{entry}>` | {{ref}}`{label}` | `{change}` | {time} |"
                 for label, change in experiments]
    return ["| chapter | exercise | the one change | training, quick profile |", "|---|---|---|---|", *rows,
            "", "Training times: the chapter's own run, which the variant repeats with one setting changed (the "
                f"fastest of its runs in `{SWEEP_FOLDER}/`, on 2 CPU threads); the variant prints its own time."]


class VariantExperiments(Directive):
    """``variant_experiments``' table, parsed as MyST."""

    def run(self):
        source = Path(self.state.document.settings.env.srcdir)
        self.state.document.settings.env.note_dependency(str(source / SWEEP_FOLDER))
        table = nodes.container()
        self.state.nested_parse(StringList(variant_experiments(source), source=str(source / SWEEP_FOLDER)),
                                self.content_offset, table)
        return [table]


MATHJAX_ENTRY = "tex-mml-chtml.js"  # the combined component _config.yml's mathjax_path names
MATHJAX_PARTS = ("a11y", "adaptors", "input", "output", "sre", "ui")  # what it loads on demand
MATHJAX_MISSING = ("MathJax 3 for the offline book was not found: install the book's extra "
                   "(pip install -e '.[book]', or pip install 'django-static-mathjax>=3.2,<4')")


def mathjax_folder() -> Path:
    """MathJax 3's es5 build inside the installed django-static-mathjax package."""
    spec = importlib.util.find_spec("mathjax")
    folder = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5" if spec else None
    if folder is None or not (folder / MATHJAX_ENTRY).is_file():
        raise RuntimeError(MATHJAX_MISSING)
    return folder


def bundle_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    source, target = mathjax_folder(), Path(app.outdir) / "_static" / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / MATHJAX_ENTRY, target / MATHJAX_ENTRY)
    for part in MATHJAX_PARTS:
        shutil.copytree(source / part, target / part, dirs_exist_ok=True)


def check_mathjax(app, config):
    mathjax_folder()  # fail at the start of a build, not after every page is written


def setup(app):
    app.add_directive("run-times", RunTimes)
    app.add_directive("variant-experiments", VariantExperiments)
    app.connect("env-before-read-docs", read_in_toc_order)
    app.add_js_file(None, body=START_IN_AUTO_MODE, priority=100)
    app.connect("html-page-context", drop_repeated_scripts)
    app.connect("config-inited", check_mathjax)
    app.connect("build-finished", bundle_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
