"""The `deb` release target: ``packaging/release.py deb`` builds libbitnet0, libbitnet-dev and
bitnet-cli with debhelper and checks them (lintian, contents, and as root: apt install, a C
program through pkg-config, the CMake package, bitnet-cli, purge).

The orchestrator runs as a subprocess, exactly as a release is made; this test checks what it
reports and what it leaves behind. Skipped off Debian or without debhelper/lintian, except under
.ci/run (BITNET_CI=1), where that fails instead.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "packaging" / "release.py"
HEADER = ROOT / "bindings_c" / "include" / "bitnet.h"
VERSION = re.search(r'#define BITNET_VERSION_STRING "([^"]+)"', HEADER.read_text()).group(1)
PACKAGES = ("libbitnet0", "libbitnet-dev", "bitnet-cli")
STRICT = os.environ.get("BITNET_CI") == "1"  # .ci/run: missing tools fail instead of skipping

sys.path.insert(0, str(ROOT / "packaging"))
from bnpack import deb  # noqa: E402
from bnpack.common import parse_summary  # noqa: E402


def _missing(what: str) -> None:
    (pytest.fail if STRICT else pytest.skip)(what)


def _need_debian_tools() -> None:
    if not Path("/etc/debian_version").exists() or shutil.which("dpkg") is None:
        _missing("not a Debian system (no dpkg)")
    for tool, package in deb.TOOLS:
        if shutil.which(tool) is None:
            _missing(f"{tool} is not installed (apt package {package})")


def _installed(pkg: str) -> bool:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return proc.returncode == 0 and not proc.stdout.endswith(" not-installed")


# ---- fast: the rendered debian/ folder ---------------------------------------------------------

def test_rendered_debian_folder_carries_the_header_version(tmp_path):
    mtime = 1_800_000_000
    deb.render_debian(tmp_path / "debian", VERSION, mtime)
    debian = tmp_path / "debian"
    assert not list(debian.rglob("*.in")), "templates must not reach debian/"
    changelog = (debian / "changelog").read_text()
    assert changelog.startswith(f"bitnet ({VERSION}) unstable; urgency=medium\n")
    assert "@" + "VERSION@" not in changelog and "@" + "DATE@" not in changelog
    if shutil.which("dpkg-parsechangelog"):
        def field(name: str) -> str:
            return subprocess.run(["dpkg-parsechangelog", "-l", debian / "changelog", "-S", name],
                                  capture_output=True, text=True, check=True).stdout.strip()
        assert field("Version") == VERSION
        assert field("Timestamp") == str(mtime)  # dpkg's SOURCE_DATE_EPOCH: the archive's date
    control = (debian / "control").read_text()
    stanzas = {m.group(1): m.group(0) for m in re.finditer(r"^Package: (\S+)\n(?:.+\n?)+", control, re.M)}
    assert set(stanzas) == set(PACKAGES)
    # The binary version is the changelog's, i.e. bitnet.h's: -dev pins the library to it.
    assert "libbitnet0 (= ${binary:Version})" in stanzas["libbitnet-dev"]
    assert "Multi-Arch: same" in stanzas["libbitnet0"] and "Multi-Arch: same" in stanzas["libbitnet-dev"]
    assert os.access(debian / "rules", os.X_OK)
    assert (debian / "source" / "format").read_text().strip() == "3.0 (native)"
    rules = [line for line in (debian / "rules").read_text().splitlines() if not line.lstrip().startswith("#")]
    assert not any("-march=native" in line for line in rules)  # the kernels choose at run time


# ---- slow: the whole target --------------------------------------------------------------------

def _summary(stdout: str) -> dict[str, tuple[str, str]]:
    """{file name: (sha256, checked-by line)} from release.py's summary (after the build logs)."""
    return {name: row for name, row in parse_summary(stdout).items() if name.endswith(".deb")}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    _need_debian_tools()
    out = tmp_path_factory.mktemp("deb")
    # Decided before the run: the target installs and purges only packages not installed yet.
    install_expected = os.geteuid() == 0 and not any(_installed(p) for p in PACKAGES)
    proc = subprocess.run([sys.executable, RELEASE, "deb", "--out", out],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"release.py deb exited {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    return out, proc, install_expected


def test_deb_target_makes_the_three_packages(release):
    out, proc, _ = release
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    names = {f"{pkg}_{VERSION}_{arch}.deb" for pkg in PACKAGES}
    assert {p.name for p in out.glob("*.deb")} == names
    summary = _summary(proc.stdout)
    assert set(summary) == names
    for name in names:
        assert summary[name][0] == hashlib.sha256((out / name).read_bytes()).hexdigest()


def test_deb_target_ran_its_checks(release):
    _, proc, install_expected = release
    for name, (_, checks) in _summary(proc.stdout).items():
        assert "lintian: 0 errors" in checks, name
        assert "dpkg-deb --contents: expected files" in checks, name
        assert "control fields and shlibs" in checks, name
        assert ("apt-get install" in checks) == install_expected, name
    if install_expected:
        checks = {name.split("_")[0]: c for name, (_, c) in _summary(proc.stdout).items()}
        assert "C program via pkg-config" in checks["libbitnet-dev"]
        assert "find_package(bitnet)" in checks["libbitnet-dev"]
        assert "bitnet-cli --version" in checks["bitnet-cli"]
    else:
        assert "SKIPPED the install check" in proc.stderr


def test_deb_control_fields(release):
    out, _, _ = release

    def field(pkg: str, name: str) -> str:
        (path,) = out.glob(f"{pkg}_*.deb")
        return subprocess.run(["dpkg-deb", "--field", path, name], capture_output=True, text=True,
                              check=True).stdout.strip()

    assert all(field(pkg, "Version") == VERSION for pkg in PACKAGES)
    assert f"libbitnet0 (= {VERSION})" in field("libbitnet-dev", "Depends")
    assert field("libbitnet0", "Multi-Arch") == "same"


def test_deb_target_leaves_nothing_installed(release):
    _, _, install_expected = release
    if install_expected:
        assert not any(_installed(p) for p in PACKAGES)
        assert not Path("/usr/include/bitnet.h").exists()
        assert not Path("/usr/share/bitnet").exists()
