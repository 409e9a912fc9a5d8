"""Entry point of the ``polyloss`` console script and of ``python -m polyloss_cli``."""

from __future__ import annotations


def main() -> None:
    """Run the ``polyloss`` command line with the process arguments.

    Returns:
        Nothing; exits the process with the command's exit code.
    """
    from polyloss_cli.app import app

    app(prog_name="polyloss")


if __name__ == "__main__":
    main()
