"""The `deb` target: libbitnet0, libbitnet-dev and bitnet-cli, built with debhelper from the CMake
build of the source archive, then checked.

Checks: lintian (no errors), the files and control fields of each package, and, as root with none
of the packages installed yet, the packages installed with apt and used the way a user would (a C
program through pkg-config, the CMake package, bitnet-cli) and purged again.

packaging/debian/ is the debian/ folder. Its ``*.in`` files are templates, rendered with the version
from bitnet.h and the date of the source archive's files (the last commit's time): dpkg takes
SOURCE_DATE_EPOCH from the changelog's date, so the .debs depend on the sources, not on the clock.
"""
from __future__ import annotations

import email.utils
import os
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from . import source_archive
from .usage_check import PROMPT, USE_C
from .common import REPO, Artifact, ReleaseError, log, require_tool, run, version

DEBIAN_TEMPLATE = REPO / "packaging" / "debian"
PACKAGES = ("libbitnet0", "libbitnet-dev", "bitnet-cli")
DEFAULT_MODEL = "/usr/share/bitnet/bitnet-english-i2_s.gguf"

# (program, Debian package that provides it)
TOOLS = (
    ("dpkg-buildpackage", "dpkg-dev"),
    ("dpkg-architecture", "dpkg-dev"),
    ("dh", "debhelper"),
    ("lintian", "lintian"),
    ("cmake", "cmake"),
    ("cc", "gcc"),
)
# Only the install check needs these.
INSTALL_TOOLS = (("apt-get", "apt"), ("pkg-config", "pkg-config"), ("readelf", "binutils"))



# ---- the debian/ folder ------------------------------------------------------------------------

def changelog_date(mtime: int) -> str:
    """A changelog date (RFC 2822, as dpkg wants it) for a Unix time."""
    return email.utils.format_datetime(datetime.fromtimestamp(mtime, timezone.utc))


def render_debian(dest: Path, ver: str, mtime: int) -> None:
    """Copy packaging/debian/ to ``dest``, rendering each ``X.in`` into ``X``
    (@VERSION@: the version; @DATE@: the changelog date of ``mtime``)."""
    shutil.copytree(DEBIAN_TEMPLATE, dest, ignore=shutil.ignore_patterns("*.in"))
    for template in DEBIAN_TEMPLATE.rglob("*.in"):
        text = template.read_text(encoding="utf-8")
        text = text.replace("@VERSION@", ver).replace("@DATE@", changelog_date(mtime))
        target = dest / template.relative_to(DEBIAN_TEMPLATE).with_suffix("")
        target.write_text(text, encoding="utf-8")
    # git and the archive keep the executable bit, but the template may be copied by other means.
    (dest / "rules").chmod(0o755)


def unpack_source(archive: Path, dest: Path) -> tuple[Path, int]:
    """Unpack the source archive under ``dest``: (its top folder, the mtime of its files)."""
    with tarfile.open(archive) as tar:
        mtime = tar.getmembers()[0].mtime
        # Our own archive; the "data" filter where Python has it (3.11.4+; Debian 12's 3.11.2 has not).
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)
    return dest / archive.name.removesuffix(".tar.gz"), mtime


# ---- build -------------------------------------------------------------------------------------

def _host_multiarch() -> str:
    return run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], capture=True).stdout.strip()


def _host_arch() -> str:
    return run(["dpkg-architecture", "-qDEB_HOST_ARCH"], capture=True).stdout.strip()


def build_packages(tree: Path, ver: str) -> tuple[dict[str, Path], Path]:
    """dpkg-buildpackage in ``tree``: ({package: .deb}, the .changes), all next to ``tree``."""
    # noautodbgsym: the release is these three packages; -dbgsym packages belong to an archive.
    run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree,
        env={"DEB_BUILD_OPTIONS": "parallel=2 noautodbgsym"})
    arch = _host_arch()
    debs = {pkg: tree.parent / f"{pkg}_{ver}_{arch}.deb" for pkg in PACKAGES}
    changes = tree.parent / f"bitnet_{ver}_{arch}.changes"
    missing = [p.name for p in [*debs.values(), changes] if not p.is_file()]
    if missing:
        raise ReleaseError(f"dpkg-buildpackage did not make {', '.join(missing)}")
    return debs, changes


# ---- static checks -----------------------------------------------------------------------------

def check_lintian(changes: Path) -> str:
    """lintian on the .changes (the .debs and .buildinfo it lists): errors fail, warnings are
    printed. Returns the check's summary."""
    # --fail-on none: lintian's exit status then means lintian itself failed; tags are counted here.
    output = run(["lintian", "--fail-on", "none", "--display-info", "--tag-display-limit", "0",
                  changes], capture=True).stdout
    lines = output.splitlines()
    for line in lines:
        log(f"lintian: {line}")
    errors = [line for line in lines if line.startswith("E: ")]
    warnings = [line for line in lines if line.startswith("W: ")]
    if errors:
        raise ReleaseError("lintian found errors:\n" + "\n".join(errors))
    return f"lintian: 0 errors, {len(warnings)} warnings"


def expected_files(multiarch: str, ver: str) -> dict[str, set[str]]:
    """What each package must hold besides /usr/share/doc/PACKAGE and lintian overrides."""
    lib = f"usr/lib/{multiarch}"
    cmake = f"{lib}/cmake/bitnet"
    return {
        "libbitnet0": {f"{lib}/libbitnet.so.0", f"{lib}/libbitnet.so.{ver}"},
        "libbitnet-dev": {
            "usr/include/bitnet.h", f"{lib}/libbitnet.so", f"{lib}/libbitnet.a", f"{lib}/pkgconfig/bitnet.pc",
            f"{cmake}/bitnetConfig.cmake", f"{cmake}/bitnetConfigVersion.cmake",
            f"{cmake}/bitnetTargets.cmake", f"{cmake}/bitnetTargets-release.cmake",
        },
        "bitnet-cli": {"usr/bin/bitnet-cli", "usr/share/man/man1/bitnet-cli.1.gz",
                       DEFAULT_MODEL.lstrip("/")},
    }


def deb_files(deb: Path) -> set[str]:
    """The files and symlinks of a .deb (no directories), as `dpkg-deb --contents` lists them."""
    names = set()
    for line in run(["dpkg-deb", "--contents", deb], capture=True).stdout.splitlines():
        # -rw-r--r-- root/root  1234 2026-01-01 00:00 ./usr/include/bitnet.h
        # lrwxrwxrwx root/root     0 2026-01-01 00:00 ./usr/lib/.../libbitnet.so -> libbitnet.so.0
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and not line.startswith("d"):
            names.add(fields[5].split(" -> ")[0].removeprefix("./"))
    return names


def check_contents(debs: dict[str, Path], multiarch: str, ver: str) -> str:
    """Each package holds exactly its expected files (plus its docs), nothing more or less."""
    problems = []
    for pkg, expected in expected_files(multiarch, ver).items():
        extra_ok = (f"usr/share/doc/{pkg}/", f"usr/share/lintian/overrides/{pkg}")
        found = {f for f in deb_files(debs[pkg]) if not f.startswith(extra_ok)}
        if missing := sorted(expected - found):
            problems.append(f"{pkg}: missing {', '.join(missing)}")
        if extra := sorted(found - expected):
            problems.append(f"{pkg}: unexpected {', '.join(extra)}")
    if problems:
        raise ReleaseError("dpkg-deb --contents:\n" + "\n".join(problems))
    return "dpkg-deb --contents: expected files"


def _field(deb: Path, name: str) -> str:
    return run(["dpkg-deb", "--field", deb, name], capture=True).stdout.strip()


def check_control(debs: dict[str, Path], ver: str) -> str:
    """The control fields and shlibs that apt and dpkg-shlibdeps act on."""
    problems = []
    for pkg, deb in debs.items():
        if _field(deb, "Version") != ver:
            problems.append(f"{pkg}: Version {_field(deb, 'Version')!r}, not {ver!r}")
    for pkg in ("libbitnet0", "libbitnet-dev"):
        if _field(debs[pkg], "Multi-Arch") != "same":
            problems.append(f"{pkg}: not Multi-Arch: same")
    if f"libbitnet0 (= {ver})" not in _field(debs["libbitnet-dev"], "Depends"):
        problems.append(f"libbitnet-dev: Depends lacks libbitnet0 (= {ver})")
    # What programs linked against libbitnet.so.0 will depend on (debian/rules, dh_makeshlibs -V).
    shlibs = run(["dpkg-deb", "--info", debs["libbitnet0"], "shlibs"], capture=True).stdout.strip()
    if not shlibs.startswith(f"libbitnet 0 libbitnet0 (>= {ver})"):
        problems.append(f"libbitnet0: shlibs is {shlibs!r}")
    if problems:
        raise ReleaseError("control fields:\n" + "\n".join(problems))
    return "control fields and shlibs"


# ---- install, use, purge -----------------------------------------------------------------------

def _installed(pkg: str) -> bool:
    """Whether dpkg knows ``pkg`` in any state but not-installed (config-files counts: not purged)."""
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return proc.returncode == 0 and not proc.stdout.endswith(" not-installed")


def install_check_skipped() -> str | None:
    """Why the install check cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "not root"
    if already := [pkg for pkg in PACKAGES if _installed(pkg)]:
        return f"{', '.join(already)} already installed (this check installs and purges them)"
    return None


APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
# Wait for a concurrent dpkg (another build, unattended-upgrades) instead of failing at once.
APT_LOCK = ["-o", "DPkg::Lock::Timeout=300"]


def _purge(earlier: BaseException | None = None) -> None:
    """Remove and purge the packages; raise if any of their files or records is left."""
    run(["apt-get", "remove", "--purge", "-y", *APT_LOCK, *PACKAGES], env=APT_ENV)
    left = [pkg for pkg in PACKAGES if _installed(pkg)]
    left += [p for p in ("/usr/include/bitnet.h", "/usr/bin/bitnet-cli", "/usr/share/bitnet") if os.path.exists(p)]
    if left:
        after = f" (after an earlier failure: {earlier})" if earlier else ""
        raise ReleaseError(f"still installed after apt-get remove --purge: {', '.join(left)}{after}")


@contextmanager
def installed(debs: dict[str, Path]) -> Iterator[None]:
    """The packages installed with apt for the body, then purged, whether the body failed or not."""
    try:
        run(["apt-get", "install", "-y", "--no-install-recommends", *APT_LOCK,
             *[str(d) for d in debs.values()]], env=APT_ENV)
        yield
    except BaseException as exc:
        _purge(earlier=exc)
        raise
    _purge()


def _output(cmd: list[str], cwd: Path | None = None) -> str:
    return run(cmd, cwd=cwd, capture=True).stdout


def use_from_c(work: Path, ver: str) -> str:
    """cc prog.c $(pkg-config --cflags --libs bitnet): links the packaged libbitnet.so.0 and generates."""
    (work / "use.c").write_text(USE_C, encoding="utf-8")
    flags = shlex.split(_output(["pkg-config", "--cflags", "--libs", "bitnet"]))
    run(["cc", "use.c", *flags, "-o", "use"], cwd=work)
    lines = _output([str(work / "use"), DEFAULT_MODEL, PROMPT]).splitlines()
    if len(lines) < 2 or lines[0] != ver or not lines[1].startswith(PROMPT) or len(lines[1]) <= len(PROMPT):
        raise ReleaseError(f"the pkg-config C program printed {lines!r}")
    if "libbitnet.so.0" not in _output(["readelf", "-d", str(work / "use")]):
        raise ReleaseError("the pkg-config C program does not link libbitnet.so.0")
    return "C program via pkg-config: links libbitnet.so.0, generates with the default model"


def use_from_cmake(tree: Path, work: Path) -> str:
    """The source's bindings_c/examples as a project of its own: find_package(bitnet) finds the
    packaged CMake config in the multiarch libdir and links bitnet::bitnet_static."""
    build = work / "examples"
    run(["cmake", "-S", tree / "bindings_c" / "examples", "-B", build,
         "-DBITNET_EXAMPLES_STATIC=ON", "-DCMAKE_BUILD_TYPE=Release"], capture=True)
    run(["cmake", "--build", build], capture=True)
    simple = build / "simple"
    if "libbitnet" in _output(["readelf", "-d", str(simple)]):
        raise ReleaseError("examples/simple built with bitnet::bitnet_static links libbitnet.so")
    text = _output([str(simple), DEFAULT_MODEL, PROMPT, "8"])
    if not text.startswith(PROMPT) or len(text.strip()) <= len(PROMPT):
        raise ReleaseError(f"examples/simple printed {text!r}")
    return "find_package(bitnet) + bitnet::bitnet_static: examples/simple generates"


def use_cli(ver: str) -> str:
    """bitnet-cli from PATH: its version, and greedy text from the default model (no -m)."""
    printed = _output(["bitnet-cli", "--version"]).strip()
    if printed != f"bitnet-cli {ver}":
        raise ReleaseError(f"bitnet-cli --version printed {printed!r}")
    # Without BITNET_DEFAULT_MODEL, which would name a model of the caller's instead of the packaged one.
    cmd = ["bitnet-cli", "-p", PROMPT, "-n", "16", "--temp", "0"]
    log("$ " + shlex.join(cmd) + "   (BITNET_DEFAULT_MODEL unset)")
    env = {k: v for k, v in os.environ.items() if k != "BITNET_DEFAULT_MODEL"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ReleaseError(f"bitnet-cli with the default model exited {proc.returncode}: {proc.stderr.strip()}")
    text = proc.stdout
    if not text.strip():
        raise ReleaseError("bitnet-cli generated nothing with the default model")
    return "bitnet-cli --version, generation with the default model"


def install_and_use(debs: dict[str, Path], tree: Path, ver: str) -> dict[str, list[str]]:
    """The install check; {package: checks it passed}."""
    for tool, package in INSTALL_TOOLS:
        require_tool(tool, package)
    with tempfile.TemporaryDirectory(prefix="bitnet-deb-use-") as tmp, installed(debs):
        work = Path(tmp)
        c_check = use_from_c(work, ver)
        cmake_check = use_from_cmake(tree, work)
        cli_check = use_cli(ver)
    purge = "apt-get install, then remove --purge leaves nothing"
    return {"libbitnet0": [purge, c_check], "libbitnet-dev": [purge, c_check, cmake_check],
            "bitnet-cli": [purge, cli_check]}


# ---- the target --------------------------------------------------------------------------------

def build_and_check(out_dir: Path) -> list[Artifact]:
    """The `deb` target: the three .debs in ``out_dir``, each with the checks it passed."""
    for tool, package in TOOLS:
        require_tool(tool, package)
    ver = version()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bitnet-deb-") as tmp:
        work = Path(tmp)
        # dist/bitnet-VERSION.tar.gz, the release's source archive (the `source` target's file).
        tree, mtime = unpack_source(source_archive.build(), work)
        render_debian(tree / "debian", ver, mtime)
        built, changes = build_packages(tree, ver)
        debs = {pkg: Path(shutil.copy2(deb, out_dir)) for pkg, deb in built.items()}
        shared_checks = ["dpkg-buildpackage (debhelper, dh_missing --fail-missing)",
                         check_lintian(changes), check_contents(debs, _host_multiarch(), ver),
                         check_control(debs, ver)]
        checks: dict[str, list[str]] = {pkg: [] for pkg in PACKAGES}
        if (why := install_check_skipped()) is None:
            checks = install_and_use(debs, tree, ver)
        else:
            log(f"deb: SKIPPED the install check (apt-get install, C program, bitnet-cli, purge): {why}")
    return [Artifact(debs[pkg], shared_checks + checks[pkg]) for pkg in PACKAGES]
