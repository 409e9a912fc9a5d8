"""Entry point of the ``polyloss`` console script and of ``python -m polyloss_cli``."""

from __future__ import annotations

import importlib.util
import sys

#: What the command line itself imports (the ``cli`` extra installs them).
COMMAND_LINE_REQUIRES = ("typer", "rich")


def installed(name: str) -> bool:
    """Whether the top-level package ``name`` can be imported (found without importing it).

    Args:
        name: a top-level package name.

    Returns:
        True when an import system finder locates it.
    """
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def main() -> None:
    """Run the ``polyloss`` command line with the process arguments.

    Without the ``cli`` extra's packages it prints one line naming the extra and
    exits with status 2 instead of failing with a traceback.

    Returns:
        Nothing; exits the process with the command's exit code.
    """
    missing = [name for name in COMMAND_LINE_REQUIRES if not installed(name)]
    if missing:
        print(
            f"Error: the polyloss command needs {' and '.join(missing)}, which is not installed; install the 'cli' "
            'extra (in a clone: pip install ".[cli]", or ".[all]" for every framework too)',
            file=sys.stderr,
        )
        raise SystemExit(2)
    from polyloss_cli.app import app

    app(prog_name="polyloss")


if __name__ == "__main__":
    main()
