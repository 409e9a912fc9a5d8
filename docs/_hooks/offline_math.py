"""MkDocs hook: ship the MathJax renderer inside the built site, so formulas render with no network.

MathJax 3 comes from a Python package (``django-static-mathjax``, in the ``docs``
dependency group; it installs the plain MathJax files under ``mathjax/static``
and needs nothing from Django). The hook copies the SVG-output bundle and the
TeX extensions it may load into ``assets/mathjax/`` of the site; no page refers
to a CDN.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

#: Files and folders of MathJax's ``es5`` directory that the site needs.
NEEDED = ("tex-svg.js", "input/tex/extensions")
TARGET = Path("assets") / "mathjax"


def _mathjax_root() -> Path:
    spec = importlib.util.find_spec("mathjax")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        root = Path(location) / "static" / "mathjax"
        if (root / "es5" / "tex-svg.js").is_file():
            return root
    raise PluginError(
        "MathJax not found: the docs need the 'docs' dependency group (django-static-mathjax ships MathJax 3); "
        "install it with: pip install -c constraints.txt django-static-mathjax"
    )


def on_config(config: Any) -> Any:
    """Fail early, before the build, when MathJax is not installed."""
    _mathjax_root()
    return config


def on_post_build(config: Any) -> None:
    """Copy MathJax's SVG bundle, its TeX extensions and its licence into the built site."""
    root = _mathjax_root()
    target = Path(config["site_dir"]) / TARGET
    for name in NEEDED:
        source = root / "es5" / name
        if source.is_dir():
            shutil.copytree(source, target / name, dirs_exist_ok=True)
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    shutil.copy2(root / "LICENSE", target / "LICENSE")
