"""The install scripts: packaging/install/install.sh (POSIX sh) and install.ps1 (Windows).

``packaging/release.py install-scripts`` renders both with the version, checks them (shellcheck -s sh;
tree-sitter-powershell) and runs install.sh against the release directory it writes (source archive
+ SHA256SUMS): dry run, install, bitnet-cli's greedy text equal to the Python binding's, a second
run, --force, an altered archive. The fast tests run install.sh from the repository against a release
directory made by ``release.py source`` and show that it fails when it should: bad options, an altered
or unlisted file, a prefix it cannot write (never calling sudo), and --python with a small stand-in
wheel. Skipped without shellcheck, cmake or cc (or tree-sitter for the PowerShell), except under .ci/run
(BITNET_CI=1), where that fails instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "packaging" / "release.py"
INSTALL_SH = ROOT / "packaging" / "install" / "install.sh"
INSTALL_PS1 = ROOT / "packaging" / "install" / "install.ps1"
HEADER = ROOT / "bindings_c" / "include" / "bitnet.h"
VERSION = re.search(r'#define BITNET_VERSION_STRING "([^"]+)"', HEADER.read_text()).group(1)
ARCHIVE = f"bitnet-{VERSION}.tar.gz"
STRICT = os.environ.get("BITNET_CI") == "1"  # .ci/run: missing tools fail instead of skipping

sys.path.insert(0, str(ROOT / "packaging"))
from bnpack import install_scripts  # noqa: E402
from bnpack.common import ReleaseError, parse_summary, write_sha256sums  # noqa: E402


def _missing(what: str) -> None:
    (pytest.fail if STRICT else pytest.skip)(what)


def _need(*tools: str) -> None:
    packages = dict(install_scripts.TOOLS)
    for tool in tools:
        if shutil.which(tool) is None:
            _missing(f"{tool} is not installed (apt package {packages.get(tool, tool)})")


def _need_tree_sitter() -> None:
    for module in ("tree_sitter", "tree_sitter_powershell"):
        if importlib.util.find_spec(module) is None:
            _missing(f"python module {module} is not installed (pip install -r packaging/requirements.txt)")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BITNET_DEFAULT_MODEL", "LD_LIBRARY_PATH", "PYTHON")}
    env.update(extra)
    return env


def install_sh(*args, env: dict[str, str] | None = None, script: Path = INSTALL_SH, user: list[str] | None = None,
               timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(user or []), "sh", str(script), *map(str, args)], env=env or _env(),
                          capture_output=True, text=True, timeout=timeout, cwd=tempfile.gettempdir())


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory) -> Path:
    """A release directory as `release.py source` leaves it: the source archive and SHA256SUMS."""
    out = tmp_path_factory.mktemp("release")
    proc = subprocess.run([sys.executable, RELEASE, "source", "--out", out], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _copy_release(release_dir: Path, dest: Path) -> Path:
    shutil.copytree(release_dir, dest)
    return dest


# ---- fast: the scripts themselves --------------------------------------------------------------

def test_install_sh_is_clean_posix_sh():
    _need("shellcheck")
    install_scripts.check_shellcheck(INSTALL_SH)
    assert INSTALL_SH.read_text().startswith("#!/bin/sh\n")
    assert os.access(INSTALL_SH, os.X_OK)


def test_shellcheck_flags_bashisms(tmp_path):
    _need("shellcheck")
    script = tmp_path / "bash.sh"
    script.write_text('#!/bin/sh\nf() { local x=1; [[ $x == 1 ]] && echo "$x"; }\nf\n')
    with pytest.raises(ReleaseError, match="SC3010|SC3043"):
        install_scripts.check_shellcheck(script)


def test_install_ps1_passes_its_checks():
    _need_tree_sitter()
    install_scripts.check_powershell(INSTALL_PS1)
    text = INSTALL_PS1.read_text()
    # What the script promises: the choco target's zip, its sha256 checked, LOCALAPPDATA, the user PATH.
    assert '"bitnet-$Version-windows-x86_64.zip"' in text and "Get-FileHash -Algorithm SHA256" in text
    assert "Join-Path $env:LOCALAPPDATA 'bitnet'" in text
    assert "[Environment]::SetEnvironmentVariable('Path'" in text and "'User')" in text


def test_install_ps1_names_the_zip_the_windows_target_makes():
    windows_zip = pytest.importorskip("bnpack.windows_zip")
    text = INSTALL_PS1.read_text().replace("$Version", VERSION)
    assert f'"{windows_zip.zip_name(VERSION)}"' in text
    assert f'"{windows_zip.top_folder(VERSION)}"' in text


@pytest.mark.parametrize("old, new, problem", [
    (b"} finally {", b"} finaly {", "unknown command 'finaly'"),
    (b"Get-FileHash -Algorithm", b"Get-FileHsah -Algorithm", "unknown command 'Get-FileHsah'"),
    (b"Test-Sha256 $sums $zipName", b"Test-Sha256 $sum $zipName", "$sum is read but never assigned"),
    (b"if ($DryRun) {", b"if ($DryRun {", "syntax error"),
])
def test_powershell_check_finds_mistakes(tmp_path, old, new, problem):
    _need_tree_sitter()
    broken = tmp_path / "install.ps1"
    source = INSTALL_PS1.read_bytes()
    assert old in source
    broken.write_bytes(source.replace(old, new, 1))
    with pytest.raises(ReleaseError, match=re.escape(problem)):
        install_scripts.check_powershell(broken)


def test_render_puts_the_version_in_its_one_place():
    for template in (INSTALL_SH, INSTALL_PS1):
        text = install_scripts.render(template.read_text(), "9.8.7")
        assert "@VERSION@" not in text and "'9.8.7'" in text
    with pytest.raises(ReleaseError, match="expected one"):
        install_scripts.render("no placeholder\n", "9.8.7")


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown option: --bogus"),
    (["--prefix"], "--prefix needs a value"),
    (["--from", ""], "--from needs a value"),
    (["--python", "--prefix", "/opt/x"], "--prefix does not apply to --python"),
    (["--version", "v1.0"], "no leading v"),
])
def test_usage_errors_exit_2(args, message):
    proc = install_sh(*args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr


def test_help_and_missing_version():
    proc = install_sh("--help")
    assert proc.returncode == 0
    for option in ("--prefix", "--from", "--version", "--python", "--force", "--dry-run"):
        assert option in proc.stdout
    # The repository's copy has no version of its own.
    proc = install_sh("--prefix", "/nonexistent/x")
    assert proc.returncode == 1 and "pass --version X.Y.Z or --from DIR" in proc.stderr


# ---- install.sh against a release directory (no build) -----------------------------------------

def test_release_py_writes_sha256sums(release_dir):
    sums = (release_dir / "SHA256SUMS").read_text()
    digest = hashlib.sha256((release_dir / ARCHIVE).read_bytes()).hexdigest()
    assert f"{digest}  {ARCHIVE}\n" in sums
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=release_dir, check=True,
                       capture_output=True)


def test_dry_run_changes_nothing(release_dir, tmp_path):
    _need("cmake", "cc")
    before = _tree(release_dir)
    prefix = tmp_path / "p" / "q"
    proc = install_sh("--from", release_dir, "--prefix", prefix, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert f"version {VERSION} (from SHA256SUMS)" in proc.stderr
    assert f"{ARCHIVE}: sha256 verified" in proc.stderr and "nothing was changed" in proc.stderr
    assert not (tmp_path / "p").exists()
    assert _tree(release_dir) == before


def test_release_at_a_url(release_dir, tmp_path):
    """--from http://...: the files come through curl (or wget), and are verified the same way."""
    _need("cmake", "cc")  # the script checks its build tools before it downloads
    import functools
    import http.server
    import threading

    if shutil.which("curl") is None and shutil.which("wget") is None:
        _missing("neither curl nor wget is installed (apt package curl)")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(release_dir))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        proc = install_sh("--from", url, "--prefix", tmp_path / "prefix", "--dry-run")
        assert proc.returncode == 0, proc.stderr
        assert f"downloading {url}SHA256SUMS" in proc.stderr and f"downloading {url}{ARCHIVE}" in proc.stderr
        assert f"{ARCHIVE}: sha256 verified" in proc.stderr
        proc = install_sh("--from", url + "nothing-here/", "--prefix", tmp_path / "prefix", "--dry-run")
        assert proc.returncode == 1 and f"cannot download {url}nothing-here/SHA256SUMS" in proc.stderr
    finally:
        server.shutdown()
        server.server_close()
    assert not (tmp_path / "prefix").exists()


def test_altered_archive_is_refused(release_dir, tmp_path):
    _need("cmake", "cc")  # the script checks its build tools before it downloads
    release = _copy_release(release_dir, tmp_path / "release")
    data = bytearray((release / ARCHIVE).read_bytes())
    data[-100] ^= 0xFF
    (release / ARCHIVE).write_bytes(bytes(data))
    prefix = tmp_path / "prefix"
    proc = install_sh("--from", release, "--prefix", prefix)
    assert proc.returncode == 1
    assert f"{ARCHIVE}: sha256 mismatch" in proc.stderr and "nothing was installed" in proc.stderr
    assert not prefix.exists()


def test_file_missing_from_sha256sums_is_refused(release_dir, tmp_path):
    _need("cmake", "cc")  # the script checks its build tools before it downloads
    release = _copy_release(release_dir, tmp_path / "release")
    (release / "SHA256SUMS").write_text("")
    proc = install_sh("--from", release, "--version", VERSION, "--prefix", tmp_path / "prefix")
    assert proc.returncode == 1 and f"does not list {ARCHIVE}" in proc.stderr
    (release / "SHA256SUMS").unlink()
    proc = install_sh("--from", release, "--version", VERSION, "--prefix", tmp_path / "prefix")
    assert proc.returncode == 1 and "SHA256SUMS: no such file" in proc.stderr
    assert not (tmp_path / "prefix").exists()


def test_unwritable_prefix_is_reported_and_sudo_never_called(release_dir):
    """As an ordinary user (nobody, when the tests run as root), into a folder the user cannot write:
    the script stops with a message that mentions sudo, and never runs a `sudo` it finds on PATH."""
    top = Path(tempfile.mkdtemp(prefix="bitnet-install-perm-"))
    try:
        top.chmod(0o755)
        release = _copy_release(release_dir, top / "release")
        fake_bin = top / "bin"
        fake_bin.mkdir()
        called = top / "sudo-called"
        (fake_bin / "sudo").write_text(f"#!/bin/sh\ntouch {called}\nexit 1\n")
        (fake_bin / "sudo").chmod(0o755)
        locked = top / "locked"
        locked.mkdir()
        env = _env(PATH=f"{fake_bin}:/usr/local/bin:/usr/bin:/bin", HOME="/nonexistent")
        user: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                _missing("setpriv is not installed (apt package util-linux)")
            user = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
            for path in (release, *release.iterdir()):
                path.chmod(path.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0))
        else:
            locked.chmod(0o555)
        proc = install_sh("--from", release, "--prefix", locked / "bitnet", env=env, user=user)
        assert proc.returncode == 1, proc.stderr
        assert "is not writable" in proc.stderr and "sudo sh install.sh --prefix" in proc.stderr
        assert "it does not call sudo itself" in proc.stderr
        assert not called.exists()
        assert not (locked / "bitnet").exists()
    finally:
        if (top / "locked").exists():
            (top / "locked").chmod(0o755)
        shutil.rmtree(top)


# ---- --python, with a stand-in wheel -----------------------------------------------------------

def _standin_wheel(dest: Path, ver: str) -> Path:
    """A tiny wheel named like the release's (libbitnet, cp39-abi3, manylinux, this machine's
    architecture) whose `bitnet` module only has __version__: enough for pip and the script."""
    arch = platform.machine()
    name = f"libbitnet-{ver}-cp39-abi3-manylinux_2_17_{arch}.manylinux2014_{arch}.whl"
    dist_info = f"libbitnet-{ver}.dist-info"
    files = {
        "bitnet/__init__.py": f'__version__ = "{ver}"\n',
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: libbitnet\nVersion: {ver}\n",
        f"{dist_info}/WHEEL": ("Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n"
                               f"Tag: cp39-abi3-manylinux_2_17_{arch}\nTag: cp39-abi3-manylinux2014_{arch}\n"),
    }
    record = "".join(f"{path},,\n" for path in files) + f"{dist_info}/RECORD,,\n"
    with zipfile.ZipFile(dest / name, "w") as whl:
        for path, text in files.items():
            whl.writestr(path, text)
        whl.writestr(f"{dist_info}/RECORD", record)
    return dest / name


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    if platform.system() != "Linux":
        pytest.skip("the stand-in wheel is a manylinux one")
    path = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", path], check=True, capture_output=True, timeout=300)
    return path


def test_python_mode_installs_the_wheel_into_the_venv(release_dir, venv, tmp_path):
    release = _copy_release(release_dir, tmp_path / "release")
    wheel = _standin_wheel(release, VERSION)
    write_sha256sums(release)
    python = venv / "bin" / "python"
    proc = install_sh("--from", release, "--python", env=_env(PYTHON=str(python)))
    assert proc.returncode == 0, proc.stderr
    assert f"{wheel.name}: sha256 verified" in proc.stderr
    assert f"bitnet {VERSION} installed for {python}" in proc.stdout
    printed = subprocess.run([python, "-c", "import bitnet; print(bitnet.__version__)"], capture_output=True,
                             text=True, cwd=tmp_path)
    assert printed.stdout.strip() == VERSION
    # Again: pip finds it installed, the script still succeeds.
    again = install_sh("--from", release, "--python", env=_env(PYTHON=str(python)))
    assert again.returncode == 0, again.stderr


def test_python_mode_refuses_an_altered_wheel(release_dir, venv, tmp_path):
    release = _copy_release(release_dir, tmp_path / "release")
    wheel = _standin_wheel(release, VERSION)
    write_sha256sums(release)
    with zipfile.ZipFile(wheel, "a") as whl:
        whl.writestr("bitnet/evil.py", "print('hello')\n")
    proc = install_sh("--from", release, "--python", env=_env(PYTHON=str(venv / "bin" / "python")))
    assert proc.returncode == 1 and f"{wheel.name}: sha256 mismatch" in proc.stderr


def test_python_mode_without_a_wheel_for_this_platform(release_dir, venv):
    proc = install_sh("--from", release_dir, "--python", env=_env(PYTHON=str(venv / "bin" / "python")))
    assert proc.returncode == 1
    assert f"the release has no libbitnet {VERSION} wheel for Linux" in proc.stderr
    assert f"pip install libbitnet=={VERSION}" in proc.stderr


# ---- slow: the whole target --------------------------------------------------------------------

@pytest.fixture(scope="module")
def target(tmp_path_factory):
    _need(*(tool for tool, _ in install_scripts.TOOLS))
    _need_tree_sitter()
    out = tmp_path_factory.mktemp("install-scripts")
    proc = subprocess.run([sys.executable, RELEASE, "install-scripts", "--out", out],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"release.py install-scripts exited {proc.returncode}\n{proc.stdout[-6000:]}\n"
                    f"{proc.stderr[-6000:]}")
    return out, proc


def test_target_renders_and_checks_both_scripts(target):
    out, proc = target
    for name, checks in (("install.sh", ("shellcheck -s sh: clean", "--dry-run creates nothing",
                                         "greedy text == the Python binding's", "a second run changes nothing",
                                         "--force reinstalls", "an altered archive is refused")),
                         ("install.ps1", ("tree-sitter-powershell: parses",))):
        digest, checked_by = parse_summary(proc.stdout)[name]
        assert digest == hashlib.sha256((out / name).read_bytes()).hexdigest()
        for check in checks:
            assert check in checked_by, (name, check)
        assert f"'{VERSION}'" in (out / name).read_text() and "@VERSION@" not in (out / name).read_text()
    assert os.access(out / "install.sh", os.X_OK)


def test_target_sha256sums_cover_the_scripts_and_the_archive(target):
    out, _ = target
    listed = {line.split()[1]: line.split()[0] for line in (out / "SHA256SUMS").read_text().splitlines()}
    assert {"install.sh", "install.ps1", ARCHIVE} <= set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name


def test_rendered_install_sh_needs_no_version_flag(target, tmp_path):
    """The rendered script knows its version: no --version, and it does not look in SHA256SUMS."""
    out, _ = target
    proc = install_sh("--from", out, "--prefix", tmp_path / "p", "--dry-run", script=out / "install.sh")
    assert proc.returncode == 0, proc.stderr
    assert "(from SHA256SUMS)" not in proc.stderr and f"{ARCHIVE}: sha256 verified" in proc.stderr
