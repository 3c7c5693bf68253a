"""Entry point of ``python -m loadtests.simulator`` (see ``cli.py``)."""

import os

# The ground-truth fit is a few dense products on shared cores: BLAS threads only contend.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from loadtests.simulator.cli import main  # noqa: E402

raise SystemExit(main())
