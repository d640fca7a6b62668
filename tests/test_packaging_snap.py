"""The `snap` release target: ``packaging/release.py snap`` checks snap/snapcraft.yaml against
snapcraft's schema, runs its parts with craft-parts on this host, renders meta/snap.yaml, packs the
.snap with ``snap pack`` and runs bitnet-cli from the prime tree and from the unpacked .snap
(greedy text equal to the Python binding's).

The orchestrator runs as a subprocess, exactly as a release is made. The fast tests show that the
checks fail when they should: a key snapcraft does not know, a command outside the snap or missing
from it, a part craft-parts rejects, a version that is not bitnet.h's. Skipped without snapd,
squashfs-tools, craft-parts or check-jsonschema, except under .ci/run (BITNET_CI=1), where that fails
instead.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "packaging" / "release.py"
HEADER = ROOT / "bindings_c" / "include" / "bitnet.h"
VERSION = re.search(r'#define BITNET_VERSION_STRING "([^"]+)"', HEADER.read_text()).group(1)
STRICT = os.environ.get("BITNET_CI") == "1"  # .ci/run: missing tools fail instead of skipping

sys.path.insert(0, str(ROOT / "packaging"))
from bnpack import snap  # noqa: E402
from bnpack.common import ReleaseError, parse_summary  # noqa: E402


def _missing(what: str) -> None:
    (pytest.fail if STRICT else pytest.skip)(what)


def _need_modules(*modules: str) -> None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            _missing(f"python module {module} is not installed (pip install -r packaging/requirements.txt)")


def _need_tools() -> None:
    if not Path("/etc/debian_version").exists():
        _missing("not a Debian system")
    for tool, package in snap.TOOLS:
        if shutil.which(tool) is None:
            _missing(f"{tool} is not installed (apt package {package})")
    _need_modules("craft_parts", "check_jsonschema")


def _write(tmp_path: Path, project: dict) -> Path:
    path = tmp_path / "snapcraft.yaml"
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    return path


# ---- fast: snapcraft.yaml ----------------------------------------------------------------------

def test_committed_snapcraft_yaml_passes_schema_and_rules():
    _need_modules("check_jsonschema")
    snap.check_schema()
    project = snap.load_project()
    snap.check_project(project)
    assert project["name"] == "bitnet" and project["base"] == "core24"
    assert project["confinement"] == "strict" and project["grade"] == "stable"
    # One version: the part reads bitnet.h and hands it over with craftctl (adopt-info).
    assert "version" not in project and project["adopt-info"] == "bitnet"
    assert "craftctl set version=" in project["parts"]["bitnet"]["override-pull"]
    assert "bindings_c/include/bitnet.h" in project["parts"]["bitnet"]["override-pull"]
    app = project["apps"]["bitnet"]
    assert app["command"] == "usr/bin/bitnet-cli" and set(app["plugs"]) == {"home", "removable-media"}
    params = project["parts"]["bitnet"]["cmake-parameters"]
    assert "-DCMAKE_BUILD_TYPE=Release" in params and "-DCMAKE_INSTALL_PREFIX=/usr" in params
    assert "-DBITNET_BUILD_EXAMPLES=OFF" in params and not any("march" in p for p in params)


def test_schema_rejects_an_unknown_key(tmp_path):
    _need_modules("check_jsonschema")
    project = snap.load_project()
    project["frobnicate"] = True
    with pytest.raises(ReleaseError, match=r"'frobnicate' was unexpected"):
        snap.check_schema(_write(tmp_path, project))


def test_schema_rejects_a_bad_value(tmp_path):
    _need_modules("check_jsonschema")
    project = snap.load_project()
    project["confinement"] = "loose"
    with pytest.raises(ReleaseError, match=r"confinement: 'loose' is not one of"):
        snap.check_schema(_write(tmp_path, project))


@pytest.mark.parametrize("change, message", [
    (lambda p: p["apps"]["bitnet"].update(command="/usr/bin/bitnet-cli"), "must be a path inside the snap"),
    (lambda p: p["apps"]["bitnet"].update(command="../bin/bitnet-cli"), "must be a path inside the snap"),
    (lambda p: p["apps"]["bitnet"].update(daemon="simple"), "keys not rendered into snap.yaml: daemon"),
    (lambda p: p.update(layout={"/usr/share/x": {"bind": "$SNAP/x"}}), "keys not rendered into snap.yaml: layout"),
    (lambda p: p.update(confinement="classic"), "confinement 'classic', not strict"),
    (lambda p: p.update(base="core20"), "base 'core20'"),
    (lambda p: p.update(version="9.9.9"), "exactly one of version and adopt-info"),
    (lambda p: (p.pop("adopt-info"), p.update(version="9.9.9")), "bitnet.h says"),
    (lambda p: p.update({"adopt-info": "nope"}), "adopt-info names 'nope'"),
    (lambda p: p["parts"]["bitnet"]["cmake-parameters"].append("-DCMAKE_C_FLAGS=-march=native"), "-march=native"),
    (lambda p: p["parts"]["bitnet"].update({"stage-packages": ["libgomp1"]}), "stage-packages cannot be honoured"),
])
def test_project_rules(change, message):
    project = copy.deepcopy(snap.load_project())
    change(project)
    with pytest.raises(ReleaseError, match=re.escape(message)):
        snap.check_project(project)


def test_app_command_missing_from_the_snap(tmp_path):
    project = snap.load_project()
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    with pytest.raises(ReleaseError, match="usr/bin/bitnet-cli is not in the snap"):
        snap.check_commands(project, tmp_path)
    (tmp_path / "usr" / "bin" / "bitnet-cli").write_text("#!/bin/sh\n")
    with pytest.raises(ReleaseError, match="is not executable"):
        snap.check_commands(project, tmp_path)
    (tmp_path / "usr" / "bin" / "bitnet-cli").chmod(0o755)
    snap.check_commands(project, tmp_path)


def test_craft_parts_rejects_an_unknown_part_key(tmp_path):
    _need_modules("craft_parts")
    if shutil.which("dpkg-query") is None:
        _missing("dpkg-query is not installed (apt package dpkg)")
    project = snap.load_project()
    project["parts"]["bitnet"]["cmake-paramters"] = ["-DX=1"]
    with pytest.raises(ReleaseError, match=r"(?s)craft-parts: Part 'bitnet' validation failed.*cmake-paramters"):
        snap.run_parts(project, tmp_path, tmp_path / "work")


def test_rendered_snap_yaml(tmp_path):
    project = snap.load_project()
    (tmp_path / "usr" / "lib" / "x86_64-linux-gnu").mkdir(parents=True)
    text = snap.render_snap_yaml(project, "1.0", tmp_path, "amd64", "x86_64-linux-gnu")
    meta = yaml.safe_load(text)
    assert meta["version"] == "1.0"  # a string, not the float 1.0
    assert meta["name"] == "bitnet" and meta["base"] == "core24" and meta["architectures"] == ["amd64"]
    assert meta["confinement"] == "strict" and meta["grade"] == "stable" and meta["license"] == "MIT"
    assert meta["apps"] == {"bitnet": {"command": "usr/bin/bitnet-cli", "plugs": ["home", "removable-media"]}}
    assert meta["environment"]["LD_LIBRARY_PATH"].endswith(":$SNAP/usr/lib:$SNAP/usr/lib/x86_64-linux-gnu")
    assert meta["description"] == project["description"]
    assert meta["links"]["source-code"] == ["https://github.com/bitnet-engine/bitnet"]
    # What snap.yaml must not carry: the build-time keys of snapcraft.yaml.
    assert not {"parts", "adopt-info", "platforms"} & set(meta)


# ---- slow: the whole target --------------------------------------------------------------------

@pytest.fixture(scope="module")
def release(tmp_path_factory):
    _need_tools()
    out = tmp_path_factory.mktemp("snap")
    proc = subprocess.run([sys.executable, RELEASE, "snap", "--out", out],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"release.py snap exited {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    return out, proc


def _arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()


def test_snap_target_makes_the_snap(release):
    out, proc = release
    name = f"bitnet_{VERSION}_{_arch()}.snap"
    assert (out / name).is_file()
    digest, checks = parse_summary(proc.stdout)[name]
    assert digest == hashlib.sha256((out / name).read_bytes()).hexdigest()
    for check in ("check-jsonschema", "project rules", "craft-parts", f"version {VERSION} set by the part",
                  "ELF: $ORIGIN RUNPATH only", "prime/: bitnet-cli --version, greedy text == the Python binding's",
                  "snap pack", "unsquashfs -lls: expected files",
                  "the unpacked .snap: bitnet-cli --version, greedy text == the Python binding's"):
        assert check in checks, check
    # craft-parts never ran apt-get.
    assert "apt-get" not in proc.stderr


def test_snap_contents_and_metadata(release, tmp_path):
    out, _ = release
    path = out / f"bitnet_{VERSION}_{_arch()}.snap"
    files = snap.snap_files(path)
    multiarch = subprocess.run(["cc", "-print-multiarch"], capture_output=True, text=True).stdout.strip()
    assert files == snap.expected_files(multiarch, VERSION)
    subprocess.run(["unsquashfs", "-q", "-n", "-d", tmp_path / "root", path, "meta/snap.yaml"], check=True)
    meta = yaml.safe_load((tmp_path / "root" / "meta" / "snap.yaml").read_text())
    assert meta["name"] == "bitnet" and meta["version"] == VERSION and meta["base"] == "core24"
    assert meta["apps"]["bitnet"]["command"] == "usr/bin/bitnet-cli"
    assert meta["architectures"] == [_arch()]


def test_cli_in_the_snap_runs_like_the_python_binding(release, tmp_path):
    """Independently of the target: unpack the .snap, run its CLI under a $SNAP-like path with an
    empty environment but PATH; the text is the Python binding's."""
    out, _ = release
    bitnet = pytest.importorskip("bitnet")
    root = tmp_path / "snap" / "bitnet" / "x1"
    root.parent.mkdir(parents=True)
    subprocess.run(["unsquashfs", "-q", "-n", "-d", root, out / f"bitnet_{VERSION}_{_arch()}.snap"], check=True)
    proc = subprocess.run([root / "usr/bin/bitnet-cli", "-p", "In the beginning", "-n", "12", "--temp", "0"],
                          env={"PATH": "/usr/bin:/bin", "SNAP": str(root)}, capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == bitnet.Model().generate("In the beginning", max_tokens=12, temperature=0) + "\n"
