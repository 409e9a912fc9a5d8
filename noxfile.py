"""nox sessions: tests per backend, the shared parity matrix, lint, typecheck, docs, bench.

Every session installs with pip against ``constraints.txt`` (the tested versions;
``torch==2.13.0`` is the CPU build). The Keras-on-JAX and Keras-on-torch sessions install
no TensorFlow, which proves the Keras losses do not need it there.

On CI (``CI`` set, as ``.ci/run`` does) each session deletes its environment when it ends:
a session with every framework takes about 3.2 GB, all of them together about 15 GB,
and every CI run starts from a fresh clone anyway.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from typing import Any

import nox

nox.options.default_venv_backend = "virtualenv"
nox.options.sessions = ["tests", "parity", "lint", "typecheck", "docs", "bench_dry_run"]
nox.options.error_on_missing_interpreters = True

CONSTRAINTS = ("-c", "constraints.txt")
# Peers compared in the benchmark only (never a dependency of the project).
BENCH_PEERS = ("polyloss==0.0.2",)
PYPROJECT = nox.project.load_toml("pyproject.toml")

# backend name -> (extras to install, POLYLOSS_BACKENDS, KERAS_BACKEND, package whose doctests run)
BACKENDS: dict[str, tuple[str, str, str | None, str]] = {
    "core": ("", "core", None, "polyloss_core"),
    "torch": ("torch,hf", "core,torch", None, "polyloss_torch"),
    "tf": ("tf", "core,keras", "tensorflow", "polyloss_tf"),
    "jax": ("jax", "core,jax", None, "polyloss_jax"),
    "keras-jax": ("keras,jax", "core,keras", "jax", "polyloss_tf"),
    "keras-torch": ("keras,torch", "core,keras", "torch", "polyloss_tf"),
}
ON_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def released_on_ci(session_function: Callable[..., None]) -> Callable[..., None]:
    """On CI, delete the session's virtualenv when the session ends (passed or failed)."""

    @functools.wraps(session_function)
    def run_then_release(session: nox.Session, *args: Any, **kwargs: Any) -> None:
        try:
            session_function(session, *args, **kwargs)
        finally:
            location = getattr(session.virtualenv, "location", None)
            if ON_CI and location and os.path.isdir(location):
                shutil.rmtree(location, ignore_errors=True)

    return run_then_release


def _install(session: nox.Session, extras: str, *groups: str) -> None:
    target = f".[{extras}]" if extras else "."
    requirements: list[str] = []
    for group in groups:
        requirements += nox.project.dependency_groups(PYPROJECT, group)
    session.install(*CONSTRAINTS, target, *requirements)


@nox.session
@nox.parametrize("backend", list(BACKENDS), ids=list(BACKENDS))
@released_on_ci
def tests(session: nox.Session, backend: str) -> None:
    """The test suite restricted to one backend (core tests always run), then its docstring examples."""
    extras, selected, keras_backend, package = BACKENDS[backend]
    _install(session, extras, "test")
    env = {"POLYLOSS_BACKENDS": selected}
    if keras_backend:
        env["KERAS_BACKEND"] = keras_backend
    session.run("pytest", *session.posargs, env=env)
    doctest_args = ["--doctest-modules", f"src/{package}"]
    if keras_backend not in (None, "tensorflow"):
        # No TensorFlow here; that module is imported only on the TensorFlow backend.
        doctest_args += ["--ignore", "src/polyloss_tf/_tensorflow.py"]
    session.run("pytest", *doctest_args, env=env)


@nox.session
@released_on_ci
def parity(session: nox.Session) -> None:
    """The shared parity matrix with every backend in one environment, plus the CLI and the docs' snippets."""
    _install(session, "all,hf", "test")
    env = {"POLYLOSS_BACKENDS": "all", "KERAS_BACKEND": "tensorflow"}
    session.run("pytest", "tests/parity", "tests/cli", "tests/docs", *session.posargs, env=env)


@nox.session
@released_on_ci
def fuzz(session: nox.Session) -> None:
    """The differential fuzz test with a long budget (400 s per backend); not a default session."""
    _install(session, "all", "test")
    env = {"POLYLOSS_BACKENDS": "all", "KERAS_BACKEND": "tensorflow"}
    session.run("pytest", "tests/fuzz", "--fuzz-seconds=400", "-s", *session.posargs, env=env)


@nox.session
@released_on_ci
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*CONSTRAINTS, *nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
@released_on_ci
def typecheck(session: nox.Session) -> None:
    """mypy on src with every framework installed."""
    _install(session, "all", "typecheck")
    session.run("mypy", *session.posargs)


@nox.session
@released_on_ci
def docs(session: nox.Session) -> None:
    """mkdocs build --strict, then the built site in headless Chromium (formulas rendered, nothing too wide).

    The site check (tests/docs/site_check.py) loads pages from disk with the network cut off and
    writes screenshots to ``.nox/docs/tmp/screenshots``. It finds Chromium on PATH or, as root,
    installs Debian's ``chromium`` package; where neither works it fails with a message, never skips.
    """
    _install(session, "", "docs")
    site = session.create_tmp() + "/site"
    session.run("mkdocs", "build", "--strict", "--site-dir", site, env={"NO_MKDOCS_2_WARNING": "1"})
    screenshots = session.create_tmp() + "/screenshots"
    session.run("python", "tests/docs/site_check.py", site, "--screenshots", screenshots, "--install-browser")


def _install_bench(session: nox.Session) -> None:
    _install(session, "all")
    session.install("--no-deps", *BENCH_PEERS)


@nox.session
@released_on_ci
def bench(session: nox.Session) -> None:
    """Time and peak memory against each framework's own CE; a full run rewrites docs/benchmarks.md."""
    _install_bench(session)
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(name="bench_dry_run")
@released_on_ci
def bench_dry_run(session: nox.Session) -> None:
    """Every benchmark case and peer once at tiny sizes, so the benchmark cannot rot (no timing claims)."""
    _install_bench(session)
    session.run("python", "benchmarks/run.py", "--dry-run")
    # The language-model heads: fused vs unfused, torch and JAX (tiny sizes).
    session.run("python", "benchmarks/bench_lm.py", "--dry-run")
    session.run("python", "benchmarks/bench_lm_jax.py", "--dry-run")
