"""scripts/vendor_assets.py: what it installs, what it refuses, and that the real manifest
is installed as pinned. The unit tests feed it tarballs made here, through its ``fetch``
argument, and install under tmp_path: nothing reaches the network."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from support import ROOT

from scripts import vendor_assets
from scripts.vendor_assets import VendorError, load_manifest, main
from service.dashboard import VENDOR_DIR
from service.dashboard.files import VENDOR_STAMP

FILES = {
    "LICENSE": b"MIT License\n",
    "dist/demo.mjs": b"export const answer = 42;\n",
    "dist/demo.css": b".demo { color: red }\n",
    "dist/unlisted.js": b"not taken\n",
}


def tarball(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A gzipped npm-style tarball: each file under package/, and ``links`` as symlinks."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(f"package/{name}")
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return out.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def write_manifest(
    path: Path, data: bytes, *, version: str = "1.0.0", files: list[str] | None = None
) -> Path:
    files = files if files is not None else ["dist/demo.mjs", "dist/demo.css", "LICENSE"]
    path.write_text(
        "[packages.demo]\n"
        f'version = "{version}"\n'
        f'integrity = "{integrity(data)}"\n'
        'license = "MIT"\n'
        f"files = {json.dumps(files)}\n"
    )
    return path


class Registry:
    """Serves tarballs by URL and records what was asked."""

    def __init__(self, tarballs: dict[str, bytes]) -> None:
        self.tarballs = tarballs
        self.asked: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.asked.append(url)
        name = url.rsplit("/", 1)[-1]
        if name not in self.tarballs:
            raise VendorError(f"cannot download {url}: not found")
        return self.tarballs[name]


def offline(url: str) -> bytes:
    raise AssertionError(f"fetched {url} although the install was up to date")


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Path, Path, bytes]:
    data = tarball(FILES)
    return write_manifest(tmp_path / "vendor.toml", data), tmp_path / "vendor", data


def test_installs_the_listed_files_their_licences_and_a_stamp(
    demo: tuple[Path, Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, dest, data = demo
    monkeypatch.setenv("npm_config_registry", "http://mirror.invalid/npm/")
    registry = Registry({"demo-1.0.0.tgz": data})
    assert main(["--manifest", str(manifest), "--dest", str(dest)], fetch=registry) == 0
    assert registry.asked == ["http://mirror.invalid/npm/demo/-/demo-1.0.0.tgz"]
    for name in ("LICENSE", "dist/demo.mjs", "dist/demo.css"):
        assert (dest / "demo" / name).read_bytes() == FILES[name]
    assert not (dest / "demo" / "dist" / "unlisted.js").exists()
    licences = (dest / "LICENSES.md").read_text()
    assert "| demo | 1.0.0 | MIT | [LICENSE](demo/LICENSE) |" in licences
    stamp = json.loads((dest / VENDOR_STAMP).read_text())
    assert stamp["packages"]["demo"]["integrity"] == integrity(data)
    assert main(["--check", "--manifest", str(manifest), "--dest", str(dest)]) == 0
    # Nothing but the install is left beside it (the staging folder is renamed into place).
    assert sorted(p.name for p in dest.parent.iterdir()) == ["vendor", "vendor.toml"]


def test_an_installed_manifest_is_not_fetched_again_unless_forced(
    demo: tuple[Path, Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, dest, data = demo
    args = ["--manifest", str(manifest), "--dest", str(dest)]
    assert main(args, fetch=Registry({"demo-1.0.0.tgz": data})) == 0
    capsys.readouterr()
    assert main(args, fetch=offline) == 0  # works offline once installed
    assert "up to date" in capsys.readouterr().out
    again = Registry({"demo-1.0.0.tgz": data})
    assert main([*args, "--force"], fetch=again) == 0
    assert len(again.asked) == 1


def test_a_tampered_tarball_is_refused_and_the_install_left_as_it_was(
    demo: tuple[Path, Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, dest, data = demo
    args = ["--manifest", str(manifest), "--dest", str(dest)]
    tampered = tarball({**FILES, "dist/demo.mjs": b"export const answer = 'pwned';\n"})
    assert main(args, fetch=Registry({"demo-1.0.0.tgz": tampered})) == 1
    err = capsys.readouterr().err
    assert "integrity mismatch for demo@1.0.0" in err and integrity(data) in err
    assert not dest.exists()
    # Over a good install: the tampered one changes nothing, and --force does not either.
    assert main(args, fetch=Registry({"demo-1.0.0.tgz": data})) == 0
    assert main([*args, "--force"], fetch=Registry({"demo-1.0.0.tgz": tampered})) == 1
    assert (dest / "demo" / "dist" / "demo.mjs").read_bytes() == FILES["dist/demo.mjs"]
    assert main(["--check", *args]) == 0
    assert sorted(p.name for p in dest.parent.iterdir()) == ["vendor", "vendor.toml"]


def test_check_fails_when_missing_stale_or_incomplete(
    demo: tuple[Path, Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, dest, data = demo
    args = ["--manifest", str(manifest), "--dest", str(dest)]
    assert main(["--check", *args]) == 1
    assert "make assets" in capsys.readouterr().err
    assert main(args, fetch=Registry({"demo-1.0.0.tgz": data})) == 0
    (dest / "demo" / "dist" / "demo.css").unlink()
    assert main(["--check", *args]) == 1
    assert "demo/dist/demo.css is missing" in capsys.readouterr().err
    # A bumped pin makes the install stale, and the next run fetches the new version.
    newer = tarball({**FILES, "dist/demo.mjs": b"export const answer = 43;\n"})
    write_manifest(manifest, newer, version="1.0.1")
    assert main(["--check", *args]) == 1
    assert "pins 1.0.1, installed: 1.0.0 (stale)" in capsys.readouterr().err
    registry = Registry({"demo-1.0.1.tgz": newer})
    assert main(args, fetch=registry) == 0 and len(registry.asked) == 1
    assert b"43" in (dest / "demo" / "dist" / "demo.mjs").read_bytes()
    assert main(["--check", *args]) == 0


@pytest.mark.parametrize(
    "path", ["../escape.js", "/etc/passwd", "dist/../../escape.js", "dist\\..\\x", "./LICENSE", ""]
)
def test_a_path_that_leaves_the_package_is_refused(tmp_path: Path, path: str) -> None:
    manifest = write_manifest(tmp_path / "vendor.toml", b"", files=["LICENSE", path])
    with pytest.raises(VendorError, match="not a plain relative path"):
        load_manifest(manifest)


def test_a_link_in_the_tarball_is_not_followed(tmp_path: Path) -> None:
    data = tarball({"LICENSE": b"MIT\n"}, links={"dist/demo.mjs": "/etc/passwd"})
    manifest = write_manifest(tmp_path / "vendor.toml", data, files=["dist/demo.mjs", "LICENSE"])
    packages = load_manifest(manifest)
    with pytest.raises(VendorError, match="package/dist/demo.mjs is not a regular file"):
        vendor_assets.install(packages, tmp_path / "vendor", fetch=lambda _: data, log=print)
    assert not (tmp_path / "vendor").exists()


def test_a_manifest_must_take_the_licence_and_notice(tmp_path: Path) -> None:
    data = tarball({**FILES, "NOTICE": b"Copyright\n"})
    manifest = write_manifest(tmp_path / "vendor.toml", data, files=["dist/demo.mjs"])
    with pytest.raises(VendorError, match="must include the package's LICENSE"):
        load_manifest(manifest)
    write_manifest(manifest, data, files=["dist/demo.mjs", "LICENSE"])
    packages = load_manifest(manifest)
    with pytest.raises(VendorError, match="ships NOTICE: list it in files"):
        vendor_assets.install(packages, tmp_path / "vendor", fetch=lambda _: data, log=print)


def test_the_registry_comes_from_npms_variable() -> None:
    assert vendor_assets.registry_url({}) == "https://registry.npmjs.org/"
    assert vendor_assets.registry_url({"NPM_CONFIG_REGISTRY": "http://r.invalid"}) == (
        "http://r.invalid/"
    )
    package = vendor_assets.Package("@scope/pkg", "2.0.0", "sha512-x", "MIT", ("LICENSE",))
    assert vendor_assets.tarball_url("http://r.invalid/", package) == (
        "http://r.invalid/@scope/pkg/-/pkg-2.0.0.tgz"
    )


# ------------------------------------------------------------------ the real manifest


def test_the_pinned_packages_are_installed_where_the_api_serves_them() -> None:
    assert vendor_assets.DEST == VENDOR_DIR and vendor_assets.STAMP_NAME == VENDOR_STAMP
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "vendor_assets.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, f"run `make assets` first:\n{run.stderr}"
    packages = load_manifest()
    assert {p.name for p in packages} == {"uplot", "swagger-ui-dist", "redoc", "js-yaml"}
    for p in packages:
        for name in p.files:
            assert (VENDOR_DIR / p.name / name).is_file(), (p.name, name)


def test_the_browser_modules_import_nothing_and_the_redoc_bundle_is_a_classic_script() -> None:
    # A browser resolves no bare specifier (`from "js-yaml"`) without an import map, so the
    # ES modules must stand alone; FastAPI's ReDoc page loads its script without
    # type="module", which is why redoc is pinned to 2.x (3.0's bundle is a module).
    for module in ("js-yaml/dist/js-yaml.mjs", "uplot/dist/uPlot.esm.js"):
        code = (VENDOR_DIR / module).read_text()
        assert "\nexport " in code or "\nexport{" in code, module
        imports = [
            line
            for line in code.splitlines()
            if line.startswith("import ") or (line.startswith("export ") and " from " in line)
        ]
        assert imports == [], (module, imports)
    redoc = (VENDOR_DIR / "redoc" / "bundles" / "redoc.standalone.js").read_text()
    assert "import.meta" not in redoc
    assert "export{" not in redoc[-2000:] and "export {" not in redoc[-2000:]
