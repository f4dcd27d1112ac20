"""``python -m fearless demo``: see ``fearless._cli``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in {"demo"}:
        print(
            "usage: python -m fearless demo [--backend asyncio|uvloop|trio] "
            "[--part all|pipeline|bank] [--items N] [--transfers N]"
        )
        return 2
    from ._cli import demo

    return demo.main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
