"""Allow ``python -m asvd``; see :mod:`asvd.cli`."""

from asvd.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
