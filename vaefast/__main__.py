"""``python -m vaefast``: the command-line interface (see vaefast.cli)."""

import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``vaefast`` console script; returns the exit code."""
    from .cli import main as _main
    return _main(argv)


if __name__ == "__main__":
    sys.exit(main())
