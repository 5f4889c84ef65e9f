"""Install the dashboard's third-party front-end files from the npm registry.

    python scripts/vendor_assets.py            # install what is missing or stale (make assets)
    python scripts/vendor_assets.py --force    # download and install everything again
    python scripts/vendor_assets.py --check    # exit 1 unless installed and up to date

service/dashboard/vendor.toml pins each package: its exact version, the sha512 integrity
of its tarball (the registry's dist.integrity) and the files to take from it. Each tarball
is verified before anything is read out of it, and a mismatch installs nothing. Only the
listed files are written, each a regular file inside the tarball's package/ folder, into
service/dashboard/vendor/<package>/ (not in git), with LICENSES.md listing the licences and
a stamp (installed.json) recording what was installed. Everything is built in a folder
beside vendor/ and swapped in whole, so a failed run leaves the previous install as it was.

When the stamp matches the manifest and every file is there, nothing is downloaded: the
script runs offline once installed. The registry is https://registry.npmjs.org/ unless
the npm_config_registry (or NPM_CONFIG_REGISTRY) environment variable names another.

Standard library only: it runs before (and without) the project's own dependencies.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "service" / "dashboard" / "vendor.toml"
DEST = ROOT / "service" / "dashboard" / "vendor"
#: The stamp's name; service/dashboard reads the same name to tell whether files are there.
STAMP_NAME = "installed.json"
LICENSES_NAME = "LICENSES.md"
DEFAULT_REGISTRY = "https://registry.npmjs.org/"
FIX = "run `python scripts/vendor_assets.py` (or `make assets`)"

#: npm's package names: lower case, optionally scoped (@scope/name).
NAME_RE = re.compile(r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$")
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$")
LICENCE_FILE_RE = re.compile(r"^(?:LICEN[CS]E|COPYING)(?:[.-]\w+)?$|\.LICEN[CS]E\.txt$", re.I)
NOTICE_FILE_RE = re.compile(r"^NOTICE(?:\.\w+)?$", re.I)

Fetch = Callable[[str], bytes]


class VendorError(Exception):
    """What stops an install, said so that the reader knows what to do."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str
    license: str
    files: tuple[str, ...]

    def pinned(self) -> dict[str, object]:
        return {
            "version": self.version,
            "integrity": self.integrity,
            "license": self.license,
            "files": list(self.files),
        }


# ------------------------------------------------------------------------------ manifest


def safe_member_path(path: str, where: str) -> str:
    """``path`` if it names a file inside the package folder; VendorError otherwise."""
    parts = PurePosixPath(path).parts
    if (
        not path
        or "\\" in path
        or path.startswith("/")
        or any(part in ("", ".", "..") for part in path.split("/"))
        or not parts
    ):
        raise VendorError(f"{where}: {path!r} is not a plain relative path inside package/")
    return path


def load_manifest(path: Path = MANIFEST) -> list[Package]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise VendorError(f"cannot read the manifest {path}: {exc}") from exc
    table = data.get("packages")
    if not isinstance(table, dict) or not table:
        raise VendorError(f"{path}: no [packages.<name>] tables")
    packages = []
    for name, entry in table.items():
        where = f"{path.name} [packages.{name}]"
        if not NAME_RE.match(name):
            raise VendorError(f"{where}: {name!r} is not an npm package name")
        if not isinstance(entry, dict):
            raise VendorError(f"{where}: must be a table")
        missing = [k for k in ("version", "integrity", "license", "files") if k not in entry]
        if missing:
            raise VendorError(f"{where}: missing {', '.join(missing)}")
        version, integrity, licence, files = (
            entry["version"], entry["integrity"], entry["license"], entry["files"],
        )  # fmt: skip
        if not isinstance(version, str) or not VERSION_RE.match(version):
            raise VendorError(f"{where}: version must be an exact version, got {version!r}")
        if not isinstance(integrity, str) or not integrity.startswith("sha512-"):
            raise VendorError(
                f"{where}: integrity must be the registry's sha512-… dist.integrity, "
                f"got {integrity!r}"
            )
        if not isinstance(licence, str) or not licence:
            raise VendorError(f"{where}: license must be an SPDX id such as 'MIT'")
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files) or not files:
            raise VendorError(f"{where}: files must be a non-empty list of paths")
        files = [safe_member_path(f, where) for f in files]
        if not any(LICENCE_FILE_RE.search(PurePosixPath(f).name) for f in files):
            raise VendorError(f"{where}: files must include the package's LICENSE")
        packages.append(Package(name, version, integrity, licence, tuple(files)))
    return packages


def stamp_of(packages: Sequence[Package]) -> dict[str, object]:
    """What the stamp of an install of ``packages`` holds."""
    return {"packages": {p.name: p.pinned() for p in packages}}


# ------------------------------------------------------------------------------ download


def registry_url(env: Mapping[str, str] = os.environ) -> str:
    url = env.get("npm_config_registry") or env.get("NPM_CONFIG_REGISTRY") or DEFAULT_REGISTRY
    return url.rstrip("/") + "/"


def tarball_url(registry: str, package: Package) -> str:
    """The registry's tarball address: <registry>/<name>/-/<unscoped name>-<version>.tgz."""
    base = package.name.rsplit("/", 1)[-1]
    return f"{registry.rstrip('/')}/{package.name}/-/{base}-{package.version}.tgz"


def download(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "descent-vendor-assets"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise VendorError(f"cannot download {url}: {exc}") from exc


def verify(data: bytes, package: Package) -> None:
    """Refuse ``data`` unless its sha512 is the manifest's integrity for ``package``."""
    got = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")
    if not hmac.compare_digest(got, package.integrity):
        raise VendorError(
            f"integrity mismatch for {package.name}@{package.version}: the downloaded tarball "
            f"is {got}, but vendor.toml pins {package.integrity}. Refusing to install it: the "
            f"download was altered or truncated, or the registry serves other bytes for this "
            f"version. Nothing was installed."
        )


# ------------------------------------------------------------------------------ install


def open_tarball(data: bytes, where: str) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except tarfile.TarError as exc:
        raise VendorError(f"{where}: the tarball cannot be read: {exc}") from exc


def extract(data: bytes, package: Package, dest: Path) -> None:
    """Write ``package``'s listed files from its (verified) tarball into dest/<name>/."""
    where = f"{package.name}@{package.version}"
    root = dest.resolve()
    with open_tarball(data, where) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        notices = sorted(
            name.removeprefix("package/")
            for name in members
            if name.count("/") == 1 and NOTICE_FILE_RE.match(name.removeprefix("package/"))
        )
        unlisted = [n for n in notices if n not in package.files]
        if unlisted:
            raise VendorError(f"{where} ships {', '.join(unlisted)}: list it in files")
        for path in package.files:
            member = members.get(f"package/{path}")
            if member is None:
                raise VendorError(f"{where}: the tarball has no package/{path}")
            if not member.isfile():  # links and devices would point anywhere
                raise VendorError(f"{where}: package/{path} is not a regular file")
            target = (root / package.name / path).resolve()
            if not target.is_relative_to(root / package.name):
                raise VendorError(f"{where}: package/{path} would be written outside {dest}")
            source = tar.extractfile(member)
            assert source is not None  # a regular file always has one
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read())
            target.chmod(0o644)


def licences_md(packages: Sequence[Package]) -> str:
    lines = [
        "# Third-party front-end files",
        "",
        "Installed by `scripts/vendor_assets.py` from the npm registry, each tarball checked",
        "against the sha512 integrity pinned in `service/dashboard/vendor.toml`.",
        "",
        "| package | version | licence | licence and notice files | files |",
        "|---|---|---|---|---|",
    ]
    for p in packages:
        notices = [
            f"[{f}]({p.name}/{f})"
            for f in p.files
            if LICENCE_FILE_RE.search(PurePosixPath(f).name)
            or NOTICE_FILE_RE.match(PurePosixPath(f).name)
        ]
        others = [f"`{f}`" for f in p.files if f"[{f}]({p.name}/{f})" not in notices]
        lines.append(
            f"| {p.name} | {p.version} | {p.license} | {', '.join(notices)} | {', '.join(others)} |"
        )
    return "\n".join(lines) + "\n"


def problems(packages: Sequence[Package], dest: Path = DEST) -> list[str]:
    """Why the install in ``dest`` is not that of ``packages`` (empty: it is)."""
    stamp = dest / STAMP_NAME
    try:
        installed = json.loads(stamp.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [f"{dest} is not installed (no {STAMP_NAME})"]
    except (OSError, ValueError) as exc:
        return [f"{stamp} cannot be read: {exc}"]
    found: list[str] = []
    have = installed.get("packages", {}) if isinstance(installed, dict) else {}
    for p in packages:
        prior = have.get(p.name)
        if prior != p.pinned():
            was = prior.get("version") if isinstance(prior, dict) else "nothing"
            found.append(f"{p.name}: vendor.toml pins {p.version}, installed: {was} (stale)")
            continue
        found += [f"{p.name}/{f} is missing" for f in p.files if not (dest / p.name / f).is_file()]
    pinned = {p.name for p in packages}
    found += [f"{name}: installed, no longer in vendor.toml" for name in have if name not in pinned]
    if not (dest / LICENSES_NAME).is_file():
        found.append(f"{LICENSES_NAME} is missing")
    return found


def install(
    packages: Sequence[Package],
    dest: Path = DEST,
    *,
    fetch: Fetch = download,
    registry: str | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> bool:
    """Install ``packages`` into ``dest``; False when it was up to date already (and
    nothing was fetched). Raises VendorError, leaving ``dest`` as it was, on any problem."""
    if not force and not problems(packages, dest):
        return False
    registry = registry or registry_url()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        for p in packages:
            url = tarball_url(registry, p)
            data = fetch(url)
            verify(data, p)
            extract(data, p, staging)
            log(f"installed {p.name}@{p.version} ({p.license}): {len(p.files)} files")
        (staging / LICENSES_NAME).write_text(licences_md(packages), encoding="utf-8")
        stamp = json.dumps(stamp_of(packages), indent=2, sort_keys=True) + "\n"
        (staging / STAMP_NAME).write_text(stamp, encoding="utf-8")
        staging.chmod(0o755)
        old = None
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}-old-", dir=dest.parent))
            dest.rename(old / dest.name)
        staging.rename(dest)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return True


def main(argv: Sequence[str] | None = None, *, fetch: Fetch = download) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=MANIFEST, help="default: %(default)s")
    parser.add_argument("--dest", type=Path, default=DEST, help="default: %(default)s")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--force", action="store_true", help="download and install again")
    mode.add_argument("--check", action="store_true", help="exit 1 unless installed, current")
    args = parser.parse_args(argv)
    try:
        packages = load_manifest(args.manifest)
        if args.check:
            found = problems(packages, args.dest)
            for problem in found:
                print(f"vendor_assets: {problem}", file=sys.stderr)
            if found:
                print(f"vendor_assets: {FIX}", file=sys.stderr)
                return 1
            print(f"{args.dest}: {len(packages)} packages installed and up to date")
            return 0
        if not install(packages, args.dest, fetch=fetch, force=args.force):
            print(f"{args.dest}: {len(packages)} packages up to date (--force re-installs)")
    except VendorError as exc:
        print(f"vendor_assets: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
