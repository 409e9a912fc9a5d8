"""Open the built documentation in headless Chromium: formulas typeset, nothing wider than the page.

Usage: ``python tests/docs/site_check.py SITE_DIR --screenshots DIR [--install-browser]``
(the ``docs`` nox session runs it after ``mkdocs build``). For each checked page and
window width, an instrumented copy of the site is loaded from disk with every
network name unresolvable, and a script on the page reports, once MathJax has
finished:

- text outside code that still shows TeX delimiters or commands (``\\(``, ``\\[``,
  ``$$``, ``\\frac``, ...): math that did not render; or reST left in a docstring
  (``:meth:``, ``is::``);
- formulas left unrendered (arithmatex spans with no MathJax output);
- elements whose right edge passes the content column, and code (other than
  ```text blocks, which keep their lines) that needs horizontal scrolling.

Screenshots of the home page, a framework page and an API page with formulas
are written to ``--screenshots``. The check fails (exit 1) on any finding, and
exits 2 when no Chromium can be found or installed: it never skips.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: page (relative to the site) -> does it contain formulas that must render?
PAGES = {
    "index.html": True,
    "maths/index.html": True,
    "torch/index.html": True,
    "keras/index.html": False,
    "cli/index.html": False,
    "api/torch/index.html": True,
    "api/core/index.html": False,
    "api/tf/index.html": False,
    "api/jax/index.html": False,
}
#: page -> (screenshot file, window height); the API page's formulas start below its class tables.
SCREENSHOTS = {
    "index.html": ("home.png", 1400),
    "torch/index.html": ("torch.png", 1400),
    "api/torch/index.html": ("api-torch.png", 6000),
}
WIDTHS = (1280, 760)
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MARK = "data-site-check"

PROBE = """
<script>
(function () {
  function check() {
    const article = document.querySelector("article.md-content__inner") || document.body;
    // The content column (the article and its margins, where Material's table scrollers reach).
    const column = document.querySelector(".md-content") || article;
    const limit = column.getBoundingClientRect().right + 1;
    const short = (text) => text.replace(/\\s+/g, " ").trim().slice(0, 60);
    const raw = [];
    const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.parentElement.closest("pre, code, script, style, mjx-container, .md-clipboard")) continue;
      if (/\\\\[()\\[\\]]|\\$\\$|\\\\(frac|sum|varepsilon|gamma|log|left|right)\\b/.test(node.textContent)) {
        raw.push(node.textContent.trim().slice(0, 80));
      }
      // reST left in docstrings: Sphinx roles (":meth:") and literal-block markers ("is::").
      if (/:(class|func|meth|attr|mod|data|exc):|\\w::(\\s|$)/.test(node.textContent)) {
        raw.push("reST: " + node.textContent.trim().slice(0, 80));
      }
    }
    const overflow = [];
    // Content of a box that scrolls sideways by design (Material's table wrapper) stays in that box.
    const insideScroller = (element) => {
      for (let up = element.parentElement; up && up !== article; up = up.parentElement) {
        if (["auto", "scroll"].includes(getComputedStyle(up).overflowX)) return true;
      }
      return false;
    };
    article.querySelectorAll("pre, table, img, mjx-container, .highlight, .md-typeset__table, p, li, h1, h2")
      .forEach((element) => {
        const box = element.getBoundingClientRect();
        if (box.width > 0 && box.right > limit && !insideScroller(element)) {
          overflow.push(element.tagName + " " + Math.round(box.right - limit) + "px: "
            + short(element.textContent || element.getAttribute("src") || ""));
        }
      });
    const wrapped = article.querySelectorAll(
      ".highlight:not(.language-text) pre > code, .doc-contents .highlight pre > code");
    if (article.querySelector("div.highlight:not([class*='language-'])")) {
      overflow.push("a code block carries no language-* class, so the wrapping CSS cannot select it");
    }
    wrapped.forEach((element) => {
      if (element.scrollWidth > element.clientWidth + 1) {
        overflow.push("code needs horizontal scrolling: " + short(element.textContent));
      }
    });
    const formulas = Array.from(article.querySelectorAll(".arithmatex"));
    const unrendered = formulas.filter((f) => !f.querySelector("mjx-container")).length;
    const result = {raw, overflow, formulas: formulas.length, unrendered,
                    mathjax: Boolean(window.MathJax && window.MathJax.version)};
    document.body.setAttribute("MARK", JSON.stringify(result));
  }
  window.addEventListener("load", () => {
    const startup = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
    (startup || Promise.resolve()).then(() => setTimeout(check, 200), () => check());
  });
})();
</script>
""".replace("MARK", MARK)


def find_browser() -> str | None:
    """The first Chromium-family browser on ``PATH``."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def ensure_browser(install: bool) -> str:
    """Find Chromium, installing Debian's package as root when asked; exit 2 with a clear message otherwise."""
    found = find_browser()
    if found or not install:
        if found:
            return found
        sys.exit(
            "site check: no Chromium found (looked for " + ", ".join(BROWSERS) + "); install one, "
            "e.g. `apt-get install -y chromium` on Debian, or pass --install-browser as root"
        )
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(
            "site check: no Chromium found, and it cannot be installed here (needs root and apt-get); "
            "install one, e.g. `sudo apt-get install -y chromium`"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        print("site check: $ " + " ".join(command), flush=True)
        if subprocess.run(command, env=env, check=False).returncode != 0:
            sys.exit("site check: `" + " ".join(command) + "` failed; install Chromium by hand")
    found = find_browser()
    if not found:
        sys.exit("site check: apt-get installed chromium but no browser is on PATH")
    return found


def _chromium(browser: str, width: int, *args: str, height: int = 1400) -> subprocess.CompletedProcess[str]:
    command = [
        browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
        "--allow-file-access-from-files", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
        "--virtual-time-budget=20000", f"--window-size={width},{height}", *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def check_page(browser: str, site: Path, page: str, width: int, has_math: bool) -> list[str]:
    """Load one instrumented page at one window width and return its problems."""
    completed = _chromium(browser, width, "--dump-dom", (site / page).as_uri())
    match = re.search(MARK + r'="([^"]*)"', completed.stdout)
    if not match:
        return [f"{page} @{width}px: the page never reported (browser stderr: {completed.stderr.strip()[-300:]})"]
    result = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<"))
    where = f"{page} @{width}px"
    problems = [f"{where}: raw TeX visible: {text!r}" for text in result["raw"]]
    problems += [f"{where}: wider than the page column: {text}" for text in result["overflow"]]
    if result["unrendered"]:
        problems.append(f"{where}: {result['unrendered']} of {result['formulas']} formulas not rendered")
    if has_math and (not result["mathjax"] or not result["formulas"]):
        problems.append(f"{where}: expected rendered formulas (MathJax loaded: {result['mathjax']})")
    print(f"{where}: {result['formulas']} formulas, {len(result['raw'])} raw TeX, {len(result['overflow'])} too wide")
    return problems


def main() -> int:
    """Check the site; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the built site (mkdocs build --site-dir)")
    parser.add_argument("--screenshots", type=Path, required=True, help="folder for the PNG screenshots")
    parser.add_argument("--install-browser", action="store_true", help="apt-get install chromium if missing (root)")
    options = parser.parse_args()
    browser = ensure_browser(options.install_browser)
    options.screenshots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        probed = Path(scratch) / "site"
        shutil.copytree(options.site, probed)
        for page in PAGES:
            path = probed / page
            if not path.is_file():
                problems.append(f"{page}: missing from the built site")
                continue
            html = path.read_text(encoding="utf-8")
            path.write_text(html.replace("</body>", PROBE + "</body>", 1), encoding="utf-8")
        for page, has_math in PAGES.items():
            if (probed / page).is_file():
                for width in WIDTHS:
                    problems += check_page(browser, probed, page, width, has_math)
    for page, (name, height) in SCREENSHOTS.items():
        target = (options.screenshots / name).resolve()
        url = (options.site / page).resolve().as_uri()
        _chromium(browser, 1280, f"--screenshot={target}", url, height=height)
        if not target.is_file() or target.stat().st_size < 20_000:  # a blank page is about 8 kB
            problems.append(f"{page}: no screenshot written to {target}")
        else:
            print(f"screenshot: {target}")
    for problem in problems:
        print("FAIL " + problem)
    print(f"site check: {'failed, ' + str(len(problems)) + ' problem(s)' if problems else 'passed'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
