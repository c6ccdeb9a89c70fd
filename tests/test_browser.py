"""The rendered book in headless Chromium.

The book is built (nitpicky, warnings as errors) with the SimCLR chapter executed and the others
rendered from their sources, served on localhost, and every page is opened in Debian's Chromium
through chromedriver: no console errors, no broken internal links or images; the SimCLR chapter
shows its figures and typeset equations; a screenshot of it is saved under ``artifacts/``.

The build bundles MathJax (``book/_ext``), and Chromium runs with the network off: every host but
localhost fails to resolve, so a page that needed a CDN would show a console error, and its
equations would stay raw TeX. Chromium and chromedriver are installed with apt when missing and the
test runs as root; elsewhere the test is skipped with the command to run, unless
``SSLBOOK_REQUIRE_BROWSER`` is set (as in CI), where it fails instead.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest
import yaml

from sslbook.classroom import toc_entries

pytestmark = pytest.mark.book_level

ROOT = Path(__file__).resolve().parent.parent
EXECUTED_CHAPTER = "book/contrastive/simclr"
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"  # a classroom without a network
ARTIFACTS = ROOT / "artifacts"


def _unavailable(message: str):
    if os.environ.get("SSLBOOK_REQUIRE_BROWSER"):
        pytest.fail(message)
    pytest.skip(message)


def _chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver, installing Debian's packages when missing and allowed."""
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if None in found and shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"], check=False,
                       stdout=subprocess.DEVNULL, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = shutil.which("chromium"), shutil.which("chromedriver")
    if None in found:
        _unavailable("Chromium and chromedriver are needed: `apt-get install chromium chromium-driver` "
                     "(Debian/Ubuntu), or put both on PATH")
    return found


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    """Build the book into a temporary folder; return its html folder."""
    out = tmp_path_factory.mktemp("book")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"] = {**config.get("execute", {}), "execute_notebooks": "force",
                         "exclude_patterns": [f"{entry}.ipynb" for entry in toc_entries(ROOT)
                                              if entry != EXECUTED_CHAPTER]}
    config["sphinx"]["local_extensions"] = {name: str(ROOT / path)  # relative to the config file otherwise
                                            for name, path in config["sphinx"].get("local_extensions", {}).items()}
    config_path = out / "_config.yml"
    config_path.write_text(yaml.safe_dump(config))
    build = subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--path-output",
                            str(out), "--config", str(config_path), "--toc", str(ROOT / "_toc.yml"), "--nitpick",
                            "--warningiserror", "--keep-going"], capture_output=True, text=True,
                           env={key: value for key, value in os.environ.items() if key != "MPLBACKEND"})  # inline figures
    assert build.returncode == 0, build.stdout[-6000:] + build.stderr[-6000:]
    return out / "_build" / "html"


@pytest.fixture(scope="module")
def server(built_book):
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, chromedriver = _chromium()
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1600", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
                 OFFLINE):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=chromedriver))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _open(browser, url: str) -> list[str]:
    """Load a page, wait for it and for MathJax; return its console errors."""
    browser.get(url)
    deadline = time.time() + 30
    while browser.execute_script("return document.readyState") != "complete" and time.time() < deadline:
        time.sleep(0.1)
    browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (window.MathJax && MathJax.startup && MathJax.startup.promise) {"
        "  MathJax.startup.promise.then(() => done(true), () => done(false)); } else { done(false); }")
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


@functools.lru_cache(maxsize=None)  # every page links to every chapter: parse each target once
def _ids(page: Path) -> set[str]:
    return set(re.findall(r'\sid="([^"]+)"', page.read_text(errors="replace")))


def _broken_targets(html: Path, server: str, urls: list[str]) -> list[str]:
    """Internal URLs whose file, or whose #anchor on that file, does not exist in the build."""
    broken = []
    for url in urls:
        address, anchor = urldefrag(url)
        if not address.startswith(server):
            continue
        path = unquote(urlparse(address).path).lstrip("/")
        target = html / path
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            broken.append(f"{url} (no file {path})")
        elif anchor and target.suffix == ".html" and anchor not in _ids(target):
            broken.append(f"{url} (no anchor #{anchor})")
    return broken


def test_every_page_loads_cleanly(built_book, server, browser, capsys):
    pages = sorted(path for path in built_book.rglob("*.html") if "_static" not in path.parts
                   and "_sources" not in path.parts)
    assert len(pages) >= 25
    problems = {}
    for page in pages:
        relative = page.relative_to(built_book).as_posix()
        errors = _open(browser, f"{server}/{relative}")
        links = browser.execute_script("return Array.from(document.querySelectorAll('a[href]'), a => a.href)")
        images = browser.execute_script(
            "return Array.from(document.images, i => [i.src, i.complete && i.naturalWidth > 0])")
        broken = _broken_targets(built_book, server, links)
        broken += [f"image {source} did not load" for source, loaded in images if not loaded]
        if errors or broken:
            problems[relative] = errors + broken
    with capsys.disabled():
        print(f"\nbrowser test: {len(pages)} pages checked in headless Chromium, {len(problems)} with problems")
    assert problems == {}


def test_the_book_bundles_mathjax_and_loads_no_script_from_elsewhere(built_book):
    assert (built_book / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    assert list((built_book / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff"))
    page = (built_book / f"{EXECUTED_CHAPTER}.html").read_text()
    sources = re.findall(r'<script[^>]*\ssrc="([^"]+)"', page)
    assert any(source.endswith("_static/mathjax/tex-mml-chtml.js") for source in sources), sources
    assert [source for source in sources if "://" in source] == []


def test_the_simclr_chapter_shows_figures_and_equations(built_book, server, browser, capsys):
    errors = _open(browser, f"{server}/{EXECUTED_CHAPTER}.html")
    assert errors == []
    figures = browser.execute_script(
        "return Array.from(document.querySelectorAll('article img, main img'))"
        ".filter(i => i.naturalWidth > 100 && i.src.includes('_images')).length")
    equations = browser.execute_script("return document.querySelectorAll('mjx-container').length")
    output_tables = browser.execute_script("return document.querySelectorAll('.cell_output table').length")
    raw_tex = browser.execute_script("return document.querySelectorAll('mjx-merror').length")
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "simclr-chapter.png"
    browser.save_screenshot(str(screenshot))
    with capsys.disabled():
        print(f"\nSimCLR chapter: {figures} figures, {equations} typeset equations, {output_tables} output tables; "
              f"screenshot {screenshot}")
    assert figures >= 4, "the executed SimCLR chapter should show its view grid, curves, embedding and plane"
    assert equations >= 5 and raw_tex == 0
    assert output_tables >= 1, "the results table (a Markdown output) should render as an HTML table"
