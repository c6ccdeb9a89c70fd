"""Sphinx settings of the book that a configuration value cannot express.

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
import re
from pathlib import Path

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


def setup(app):
    app.connect("env-before-read-docs", read_in_toc_order)
    app.add_js_file(None, body=START_IN_AUTO_MODE, priority=100)
    app.connect("html-page-context", drop_repeated_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
