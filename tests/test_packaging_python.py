"""The Python release artifacts, made by the orchestrator (packaging/release.py) as a release would.

- the version has one source (bitnet.h) and every build system reads it;
- the sdist holds every tracked source and no build output (and a broken one is caught);
- the wheel is built from the sdist alone, repaired to manylinux, abi3-audited, twine-checked
  and passes the Python tests in a fresh venv with no C compiler on PATH;
- the cibuildwheel config and the GitHub workflows validate against their schemas.
"""
from __future__ import annotations

import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "packaging" / "release.py"
sys.path.insert(0, str(ROOT / "packaging"))

from bnpack import common, sdist, source_archive  # noqa: E402

VERSION = common.version()


def release(*args: str, out: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, str(RELEASE), *args, "--out", str(out)], cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc


def test_every_build_reads_the_version_from_bitnet_h():
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION)
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert "BITNET_VERSION_STRING" in cmake, "CMake must parse the version from bitnet.h"
    assert 'dynamic = ["version"]' in (ROOT / "pyproject.toml").read_text()
    assert "BITNET_VERSION_STRING" in (ROOT / "setup.py").read_text()


def test_source_archive_is_reproducible_and_holds_the_c_build(tmp_path):
    first = source_archive.build(tmp_path / "a")
    second = source_archive.build(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        names = set(tar.getnames())
    top = f"bitnet-{VERSION}/"
    for needed in ("CMakeLists.txt", "LICENSE", "bindings_c/include/bitnet.h", "core_c",
                   "bindings_py/bitnet/models/bitnet-english-i2_s.gguf"):
        assert any(n == top + needed or n.startswith(top + needed + "/") for n in names), needed
    assert not any(n.startswith(top + "tests/") for n in names), "the C release carries no test data"


def test_sdist_target(tmp_path):
    proc = release("sdist", out=tmp_path)
    assert (tmp_path / f"libbitnet-{VERSION}.tar.gz").is_file()
    assert "twine check --strict" in proc.stdout and "every git-tracked C source" in proc.stdout


def _rewrite_sdist(src: Path, dst: Path, *, drop: str = "", add: str = "") -> Path:
    """A copy of the sdist without the member ending in `drop` and with a 4-byte file `add`."""
    dst.parent.mkdir(parents=True)
    with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
        for member in tin.getmembers():
            if not (drop and member.name.endswith(drop)):
                tout.addfile(member, tin.extractfile(member) if member.isfile() else None)
        if add:
            extra = tarfile.TarInfo(f"libbitnet-{VERSION}/{add}")
            extra.size = 4
            tout.addfile(extra, io.BytesIO(b"\x7fELF"))
    return dst


@pytest.fixture(scope="module")
def built_sdist(tmp_path_factory) -> Path:
    return sdist.build(tmp_path_factory.mktemp("sdist"))


def test_sdist_check_catches_a_missing_source(built_sdist, tmp_path):
    broken = _rewrite_sdist(built_sdist, tmp_path / "x" / built_sdist.name, drop="core_c/gguf.c")
    with pytest.raises(common.ReleaseError, match="lacks 1 tracked files.*gguf.c"):
        sdist.check_contents(broken)


def test_sdist_check_catches_a_stale_build_output(built_sdist, tmp_path):
    dirty = _rewrite_sdist(built_sdist, tmp_path / "x" / built_sdist.name, add="bindings_py/bitnet/_bitnet.abi3.so")
    with pytest.raises(common.ReleaseError, match="build outputs.*_bitnet.abi3.so"):
        sdist.check_contents(dirty)
    sdist.check_contents(built_sdist)  # and the real one passes


def test_wheel_target_builds_from_the_sdist_and_passes_the_tests_installed(tmp_path):
    proc = release("wheel", out=tmp_path)
    (wheel,) = tmp_path.glob(f"libbitnet-{VERSION}-cp39-abi3-manylinux_*.whl")
    assert "abi3audit --strict" in proc.stdout
    passed = re.search(r"(\d+) tests passed against it in a fresh venv", proc.stdout)
    assert passed and int(passed.group(1)) > 300, proc.stdout[-3000:]


def test_cibuildwheel_config_is_valid_and_builds_one_abi3_wheel_per_platform():
    subprocess.run([sys.executable, "-m", "validate_pyproject", str(ROOT / "pyproject.toml")], check=True)
    expected = {
        "linux": {f"cp{v}-{libc}_{arch}" for v in ("39", "314") for libc in ("manylinux", "musllinux")
                  for arch in ("x86_64", "aarch64")},
        "macos": {f"cp{v}-macosx_{arch}" for v in ("39", "314") for arch in ("x86_64", "arm64")},
        "windows": {f"cp{v}-win_{arch}" for v in ("39", "314") for arch in ("amd64", "arm64")},
    }
    for platform, ids in expected.items():
        out = subprocess.run([sys.executable, "-m", "cibuildwheel", "--print-build-identifiers", "--platform", platform],
                             cwd=ROOT, check=True, text=True, stdout=subprocess.PIPE).stdout
        assert set(out.split()) == ids, platform


def test_github_workflows_match_the_schema():
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert {w.name for w in workflows} >= {"ci.yml", "release.yml"}
    subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                    *map(str, workflows)], check=True)


def test_cibuildwheel_and_the_wheel_target_leave_out_the_same_tests():
    import tomllib  # Python >= 3.11, as the test suite's pins

    from bnpack import wheel

    command = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cibuildwheel"]["test-command"]
    ignored = re.findall(r"--ignore-glob=\{project\}/tests/(\S+)", command)
    assert sorted(ignored) == sorted(wheel.NEEDS_OTHER_TOOLS)
