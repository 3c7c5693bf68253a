"""``python -m shared.offline_store``: build a point-in-time training set (see ``cli``)."""

from shared.offline_store.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
