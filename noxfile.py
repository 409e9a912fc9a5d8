"""nox sessions: tests per backend, the shared parity matrix, lint, typecheck, docs, bench.

Every session installs with pip against ``constraints.txt`` (the tested versions;
``torch==2.13.0`` is the CPU build).
"""

from __future__ import annotations

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
    "torch": ("torch", "core,torch", None, "polyloss_torch"),
    "tf": ("tf", "core,keras", "tensorflow", "polyloss_tf"),
    "jax": ("jax", "core,jax", None, "polyloss_jax"),
    "keras-jax": ("tf,jax", "core,keras", "jax", "polyloss_tf"),
    "keras-torch": ("tf,torch", "core,keras", "torch", "polyloss_tf"),
}


def _install(session: nox.Session, extras: str, *groups: str) -> None:
    target = f".[{extras}]" if extras else "."
    requirements: list[str] = []
    for group in groups:
        requirements += nox.project.dependency_groups(PYPROJECT, group)
    session.install(*CONSTRAINTS, target, *requirements)


@nox.session
@nox.parametrize("backend", list(BACKENDS), ids=list(BACKENDS))
def tests(session: nox.Session, backend: str) -> None:
    """The test suite restricted to one backend (core tests always run), then its docstring examples."""
    extras, selected, keras_backend, package = BACKENDS[backend]
    _install(session, extras, "test")
    env = {"POLYLOSS_BACKENDS": selected}
    if keras_backend:
        env["KERAS_BACKEND"] = keras_backend
    session.run("pytest", *session.posargs, env=env)
    session.run("pytest", "--doctest-modules", f"src/{package}", env=env)


@nox.session
def parity(session: nox.Session) -> None:
    """The shared parity matrix with every backend in one environment, plus the CLI and the docs' snippets."""
    _install(session, "all", "test")
    env = {"POLYLOSS_BACKENDS": "all", "KERAS_BACKEND": "tensorflow"}
    session.run("pytest", "tests/parity", "tests/cli", "tests/docs", *session.posargs, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*CONSTRAINTS, *nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy on src with every framework installed."""
    _install(session, "all", "typecheck")
    session.run("mypy", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """mkdocs build --strict (API pages come from the docstrings)."""
    _install(session, "", "docs")
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", session.create_tmp() + "/site", env={"NO_MKDOCS_2_WARNING": "1"}
    )


def _install_bench(session: nox.Session) -> None:
    _install(session, "all")
    session.install("--no-deps", *BENCH_PEERS)


@nox.session
def bench(session: nox.Session) -> None:
    """Time and peak memory against each framework's own CE; a full run rewrites docs/benchmarks.md."""
    _install_bench(session)
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(name="bench_dry_run")
def bench_dry_run(session: nox.Session) -> None:
    """Every benchmark case and peer once at tiny sizes, so the benchmark cannot rot (no timing claims)."""
    _install_bench(session)
    session.run("python", "benchmarks/run.py", "--dry-run")
