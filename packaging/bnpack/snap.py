"""The `snap` target: ``bitnet_VERSION_ARCH.snap`` from ``snap/snapcraft.yaml``, built on this host
without snapcraft, then checked.

snapcraft itself needs LXD/Multipass or an Ubuntu host; it cannot run here. What it would do is
done with the pieces it is made of:

1. the schema: ``check-jsonschema`` against snapcraft's own JSON schema (``snap/schema/``,
   vendored from snapcraft 9.0.1), plus the rules of this project (strict confinement, a base
   whose glibc is known, no -march=native, commands inside the snap...);
2. the parts: craft-parts (the library snapcraft runs its parts with) runs them on this host, in
   a temporary work folder, through pull, build, stage and prime. ``source: .`` is the release
   source archive (``bitnet-VERSION.tar.gz``, unpacked). build-packages must already be installed
   (checked with dpkg-query; craft-parts' apt back end is replaced by its no-op one, so it never
   calls apt-get); stage-packages and build-snaps are refused, as this host check cannot get them;
3. the version: the part's ``craftctl set version=`` (adopt-info) must give bitnet.h's version;
4. ``prime/meta/snap.yaml``, rendered from snapcraft.yaml as snapcraft renders it (name, title,
   version, summary, description, license, architectures, base, apps, confinement, grade,
   environment, links); a key this renderer does not know is an error, not dropped;
5. the prime tree: every app command is there and executable, ELF files have only
   ``$ORIGIN``-relative RUNPATHs and need no glibc newer than the base's; ``bitnet-cli
   --version`` and a greedy run with the default model (no ``-m``, no ``BITNET_DEFAULT_MODEL``, no
   ``LD_LIBRARY_PATH``) print exactly what the Python binding generates;
6. ``snap pack`` (Debian's snapd package; no daemon needed) makes the .snap, validating snap.yaml
   and the commands; ``unsquashfs -lls`` lists exactly the expected files, and the CLI unpacked
   from the .snap generates the same text again.

What only snapcraft and the store can check (``snapcraft pack`` in LXD, the review tools, an
install with ``snap install --dangerous`` under real confinement) is for the release CI on Ubuntu.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import yaml

from . import source_archive
from .usage_check import PROMPT, N_TOKENS, reference_text
from .common import REPO, Artifact, CommandFailed, ReleaseError, log, require_tool, run, sha256_file, version
from .deb import unpack_source
from .pytools import module_cmd

SNAP_DIR = REPO / "snap"
SNAPCRAFT_YAML = SNAP_DIR / "snapcraft.yaml"
SCHEMA = SNAP_DIR / "schema" / "snapcraft.json"
DEFAULT_MODEL = REPO / "bindings_py" / "bitnet" / "models" / "bitnet-english-i2_s.gguf"

# (program, Debian package that provides it)
TOOLS = (
    ("snap", "snapd"),  # `snap pack` only: no daemon, nothing started
    ("mksquashfs", "squashfs-tools"),  # what `snap pack` runs
    ("unsquashfs", "squashfs-tools"),
    ("cmake", "cmake"),
    ("cc", "gcc"),
    ("readelf", "binutils"),
    ("dpkg-query", "dpkg"),
    ("dpkg", "dpkg"),
)

# The glibc of each base a snap may name: binaries built here must need no newer one.
BASE_GLIBC = {"core22": (2, 35), "core24": (2, 39)}
# What each craft-parts plugin installs as build-packages on its own (craft_parts/plugins/*).
PLUGIN_BUILD_PACKAGES = {"cmake": {"gcc", "cmake"}, "make": {"gcc", "make"}, "nil": set(), "dump": set()}
# The keys of snapcraft.yaml this module turns into snap.yaml (or that need nothing there).
# Anything else would change the snap in a way the renderer does not know: an error, not dropped.
TOP_KEYS = {"name", "title", "base", "version", "adopt-info", "summary", "description", "license", "grade",
            "confinement", "platforms", "apps", "parts", "website", "source-code", "issues", "contact",
            "donation"}
APP_KEYS = {"command", "plugs", "environment"}
LINK_KEYS = ("contact", "donation", "issues", "source-code", "website")
# Part keys this host run cannot honour (they fetch from the Ubuntu archive or the store).
UNSUPPORTED_PART_KEYS = {"stage-packages", "stage-snaps", "build-snaps", "overlay-packages"}


# ---- snapcraft.yaml ----------------------------------------------------------------------------

def load_project(path: Path = SNAPCRAFT_YAML) -> dict[str, Any]:
    try:
        project = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ReleaseError(f"{path}: not YAML: {exc}") from exc
    if not isinstance(project, dict):
        raise ReleaseError(f"{path}: not a mapping")
    return project


def _schema_errors(project: dict[str, Any]) -> list[str]:
    """The schema's errors for the project's base alone (the whole schema is a oneOf over bases,
    whose own message is a list of every branch's failure), as ``path: message`` lines."""
    import jsonschema

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    defs = schema["$defs"]
    branch = {"core22": "Core22Project", "core24": "Core24Project"}.get(str(project.get("base")))
    if branch is None:
        return [f"base: {project.get('base')!r} is not one of {sorted(BASE_GLIBC)}"]
    sub = {"$defs": defs, "$ref": f"#/$defs/{branch}"}
    validator = jsonschema.Draft202012Validator(sub)
    return [f"{'.'.join(str(p) for p in err.absolute_path) or '(top)'}: {err.message}"
            for err in sorted(validator.iter_errors(project), key=lambda e: list(map(str, e.absolute_path)))]


def check_schema(path: Path = SNAPCRAFT_YAML) -> str:
    """check-jsonschema with snapcraft's schema; on failure the errors of the base's own branch."""
    try:
        run([*module_cmd("check_jsonschema"), "--schemafile", SCHEMA, path], capture=True)
    except CommandFailed as exc:
        details = _schema_errors(load_project(path)) or [exc.output.strip()[-3000:]]
        raise ReleaseError(f"{path.name} does not match snapcraft's schema ({SCHEMA.relative_to(REPO)}):\n"
                           + "\n".join(details)) from exc
    return f"check-jsonschema: snapcraft's schema ({SCHEMA.relative_to(REPO)})"


def check_project(project: dict[str, Any]) -> str:
    """This project's rules, beyond what the schema says."""
    problems = []
    if unknown := sorted(set(project) - TOP_KEYS):
        problems.append(f"keys not rendered into snap.yaml: {', '.join(unknown)}")
    if project.get("base") not in BASE_GLIBC:
        problems.append(f"base {project.get('base')!r}: not one of {sorted(BASE_GLIBC)} (glibc known)")
    if project.get("confinement") != "strict":
        problems.append(f"confinement {project.get('confinement')!r}, not strict")
    if project.get("grade") != "stable":
        problems.append(f"grade {project.get('grade')!r}, not stable")
    parts = project.get("parts") or {}
    if ("version" in project) == ("adopt-info" in project):
        problems.append("exactly one of version and adopt-info")
    if "adopt-info" in project and project["adopt-info"] not in parts:
        problems.append(f"adopt-info names {project['adopt-info']!r}, which is not a part")
    if "version" in project and str(project["version"]) != version():
        problems.append(f"version {project['version']!r}, but bitnet.h says {version()!r}")
    for name, part in parts.items():
        part = part or {}
        if bad := sorted(set(part) & UNSUPPORTED_PART_KEYS):
            problems.append(f"part {name}: {', '.join(bad)} cannot be honoured by the host run")
        if any("march=native" in str(p) for p in part.get("cmake-parameters", [])):
            problems.append(f"part {name}: -march=native (the kernels choose at run time)")
    for name, app in (project.get("apps") or {}).items():
        if unknown := sorted(set(app) - APP_KEYS):
            problems.append(f"app {name}: keys not rendered into snap.yaml: {', '.join(unknown)}")
        command = str(app.get("command", ""))
        if not command or command.startswith("/") or ".." in Path(command.split()[0]).parts:
            problems.append(f"app {name}: command {command!r} must be a path inside the snap")
    if problems:
        raise ReleaseError(f"{SNAPCRAFT_YAML.name} (rules of packaging/bnpack/snap.py):\n" + "\n".join(problems))
    return "project rules (strict, stable, base glibc known, version from bitnet.h, no -march=native)"


# ---- the parts, with craft-parts ---------------------------------------------------------------

def check_build_packages(parts: dict[str, Any]) -> list[str]:
    """Every build-package (the parts' own and their plugins') is installed: craft-parts would
    otherwise call apt-get, which this check never lets it do."""
    wanted: set[str] = set()
    for part in parts.values():
        wanted |= set(part.get("build-packages", []))
        wanted |= PLUGIN_BUILD_PACKAGES.get(part.get("plugin", "nil"), set())
    missing = []
    for pkg in sorted(wanted):
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
        if proc.returncode != 0 or not proc.stdout.endswith(" installed"):
            missing.append(pkg)
    if missing:
        raise ReleaseError(f"build-packages not installed: apt-get install {' '.join(missing)}")
    return sorted(wanted)


@contextlib.contextmanager
def _host_mode() -> Iterator[None]:
    """craft-parts on this host, never touching apt: its no-op package repository (the one it
    uses on systems it does not know) for the run, and craftctl (installed next to this Python)
    on PATH for the override scriptlets. Both undone afterwards."""
    import craft_parts.packages as packages
    from craft_parts.packages.base import DummyRepository

    scripts = Path(sys.executable).parent
    if shutil.which("craftctl", path=str(scripts)) is None and shutil.which("craftctl") is None:
        raise ReleaseError(f"craftctl (from craft-parts) not found next to {sys.executable}: "
                           "pip install -r packaging/requirements.txt")
    saved_repo, saved_path = packages._get_repository_for_platform, os.environ.get("PATH", "")
    packages._get_repository_for_platform = lambda: DummyRepository
    os.environ["PATH"] = os.pathsep.join([str(scripts), saved_path])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("==> craft-parts: %(message)s"))
    logger = logging.getLogger("craft_parts")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        packages._get_repository_for_platform = saved_repo
        os.environ["PATH"] = saved_path
        logger.removeHandler(handler)


def run_parts(project: dict[str, Any], tree: Path, work: Path) -> dict[str, str]:
    """Pull, build, stage and prime every part into ``work`` (prime: ``work/prime``), each
    ``source: .`` being ``tree``. Returns the project variables the parts set: {"version": ...}
    (set by the adopt-info part with ``craftctl set version=``; "" when none set it)."""
    try:
        import craft_parts
        from craft_parts import LifecycleManager, ProjectVarInfo, Step
    except ImportError as exc:
        raise ReleaseError(f"craft-parts not importable by {sys.executable} ({exc}): "
                           "pip install -r packaging/requirements.txt") from exc

    parts = copy.deepcopy(project["parts"])
    for name, part in parts.items():
        if part.get("source") != ".":
            raise ReleaseError(f"part {name}: source {part.get('source')!r}; the host run builds `source: .` "
                               "(the release source archive) only")
        part["source"] = str(tree)
    wanted = check_build_packages(parts)
    log(f"build-packages {', '.join(wanted)}: installed (dpkg-query); craft-parts gets its no-op package "
        "back end, so its `Installing build-packages` installs nothing")
    adopt = project.get("adopt-info")
    log(f"craft-parts {craft_parts.__version__}: {', '.join(parts)} -> {work / 'prime'}")
    with _host_mode():
        try:
            lcm = LifecycleManager(
                {"parts": parts}, application_name="snapcraft", cache_dir=work / "cache",
                work_dir=work, base=project["base"], project_name=project["name"],
                parallel_build_count=os.cpu_count() or 1,
                project_vars=ProjectVarInfo.unmarshal(
                    {"version": {"value": None, "part-name": adopt}}))
            actions = lcm.plan(Step.PRIME)
            with lcm.action_executor() as executor:
                executor.execute(actions, stdout=sys.stderr, stderr=sys.stderr)
        except craft_parts.errors.PartsError as exc:
            detail = "\n".join(x for x in (exc.brief, exc.details, exc.resolution) if x)
            raise ReleaseError(f"craft-parts: {detail}") from exc
        return {"version": lcm.project_info.get_project_var("version") or ""}


# ---- meta/snap.yaml ----------------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(str, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s,
                                                             style="|" if "\n" in s else None))


def host_arch() -> str:
    """The Debian architecture of this host; snap architectures use the same names."""
    return run(["dpkg", "--print-architecture"], capture=True).stdout.strip()


def multiarch_triplet() -> str:
    return run(["cc", "-print-multiarch"], capture=True).stdout.strip()


def render_snap_yaml(project: dict[str, Any], ver: str, prime: Path, arch: str, triplet: str) -> str:
    """meta/snap.yaml as snapcraft writes it (snapcraft/meta/snap_yaml.py): the default app
    environment (LD_LIBRARY_PATH of the library folders that exist in prime, PATH) for a
    confined snap, links as lists."""
    libdirs = [d for d in ("lib", "usr/lib", f"lib/{triplet}", f"usr/lib/{triplet}") if (prime / d).is_dir()]
    environment = {
        "LD_LIBRARY_PATH": ":".join(["${SNAP_LIBRARY_PATH}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}",
                                     *[f"$SNAP/{d}" for d in libdirs]]),
        "PATH": "$SNAP/usr/sbin:$SNAP/usr/bin:$SNAP/sbin:$SNAP/bin:$PATH",
    }
    apps = {}
    for name, app in (project.get("apps") or {}).items():
        apps[name] = {key: app[key] for key in ("command", "plugs", "environment") if app.get(key)}
    meta: dict[str, Any] = {"name": project["name"]}
    if project.get("title"):
        meta["title"] = project["title"]
    meta.update({"version": ver, "summary": project["summary"], "description": project["description"]})
    if project.get("license"):
        meta["license"] = project["license"]
    meta.update({"architectures": [arch], "base": project["base"], "apps": apps,
                 "confinement": project["confinement"], "grade": project.get("grade") or "stable",
                 "environment": environment})
    links = {k: v if isinstance(v, list) else [v] for k in LINK_KEYS if (v := project.get(k))}
    if links:
        meta["links"] = links
    return yaml.dump(meta, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


# ---- the prime tree ----------------------------------------------------------------------------

def _elf_files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    found.append(path)
    return found


def check_elf(prime: Path, base: str) -> str:
    """RUNPATHs are $ORIGIN-relative (nothing of this host's), and no ELF file needs a glibc
    newer than the base's."""
    problems, newest = [], (0, 0)
    for path in _elf_files(prime):
        rel = path.relative_to(prime)
        dyn = run(["readelf", "-d", "-W", path], capture=True).stdout
        for kind, value in re.findall(r"\((RPATH|RUNPATH)\)\s+Library r(?:un)?path: \[(.*)\]", dyn):
            if any(not entry.startswith("$ORIGIN") for entry in value.split(":")):
                problems.append(f"{rel}: {kind} {value} is not $ORIGIN-relative")
        syms = run(["readelf", "--dyn-syms", "-W", path], capture=True).stdout
        for major, minor in re.findall(r"@GLIBC_(\d+)\.(\d+)", syms):
            newest = max(newest, (int(major), int(minor)))
    if newest > BASE_GLIBC[base]:
        problems.append(f"needs GLIBC_{newest[0]}.{newest[1]}, newer than {base}'s "
                        f"{BASE_GLIBC[base][0]}.{BASE_GLIBC[base][1]}")
    if problems:
        raise ReleaseError("ELF files in the snap:\n" + "\n".join(problems))
    return f"ELF: $ORIGIN RUNPATH only, needs glibc <= {newest[0]}.{newest[1]} ({base} has " \
           f"{BASE_GLIBC[base][0]}.{BASE_GLIBC[base][1]})"


def check_commands(project: dict[str, Any], root: Path) -> None:
    """Each app's command is a file in the snap, executable (what snapd would exec)."""
    problems = []
    for name, app in (project.get("apps") or {}).items():
        target = root / str(app["command"]).split()[0]
        if not target.is_file():
            problems.append(f"app {name}: {app['command']} is not in the snap")
        elif not os.access(target, os.X_OK):
            problems.append(f"app {name}: {app['command']} is not executable")
    if problems:
        raise ReleaseError("\n".join(problems))


def check_cli(root: Path, ver: str, expected: str, where: str) -> str:
    """``ROOT/usr/bin/bitnet-cli``: its version, and greedy text from the default model it finds
    by itself, equal to the Python binding's. No LD_LIBRARY_PATH (the RUNPATH must do) and no
    BITNET_DEFAULT_MODEL (the model must be found at <exe>/../share/bitnet, i.e. $SNAP/usr/share/bitnet)."""
    exe = root / "usr" / "bin" / "bitnet-cli"
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "BITNET_DEFAULT_MODEL")}
    printed = subprocess.run([exe, "--version"], env=env, capture_output=True, text=True)
    if printed.returncode != 0 or printed.stdout.strip() != f"bitnet-cli {ver}":
        raise ReleaseError(f"{where}: bitnet-cli --version exited {printed.returncode}, printed "
                           f"{printed.stdout.strip()!r} {printed.stderr.strip()!r}")
    cmd = [str(exe), "-p", PROMPT, "-n", str(N_TOKENS), "--temp", "0"]
    log(f"$ {shlex.join(cmd)}   (no LD_LIBRARY_PATH, no BITNET_DEFAULT_MODEL)")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise ReleaseError(f"{where}: bitnet-cli with the default model exited {proc.returncode}: "
                           f"{proc.stderr.strip()}")
    if proc.stdout != expected + "\n":
        raise ReleaseError(f"{where}: bitnet-cli printed {proc.stdout!r}, the Python binding {expected!r}")
    log(f"{where}: {PROMPT}{expected!s}")
    return f"{where}: bitnet-cli --version, greedy text == the Python binding's"


# ---- the .snap ---------------------------------------------------------------------------------

def expected_files(triplet: str, ver: str) -> set[str]:
    return {"meta/snap.yaml", "usr/bin/bitnet-cli", "usr/share/bitnet/bitnet-english-i2_s.gguf",
            f"usr/lib/{triplet}/libbitnet.so.0", f"usr/lib/{triplet}/libbitnet.so.{ver}"}


def snap_files(snap: Path) -> set[str]:
    """The files and symlinks of a .snap (no directories), as ``unsquashfs -lls`` lists them."""
    names = set()
    for line in run(["unsquashfs", "-lls", snap], capture=True).stdout.splitlines():
        # -rwxr-xr-x root/root  71464 2026-01-01 00:00 squashfs-root/usr/bin/bitnet-cli
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[0][0] in "-l" and fields[5].startswith("squashfs-root/"):
            names.add(fields[5].split(" -> ")[0].removeprefix("squashfs-root/"))
    return names


def check_snap_contents(snap: Path, triplet: str, ver: str) -> str:
    found = snap_files(snap)
    expected = expected_files(triplet, ver)
    problems = []
    if missing := sorted(expected - found):
        problems.append(f"missing {', '.join(missing)}")
    if extra := sorted(found - expected):
        problems.append(f"unexpected {', '.join(extra)}")
    if problems:
        raise ReleaseError(f"unsquashfs -lls {snap.name}: " + "; ".join(problems))
    return "unsquashfs -lls: expected files (bitnet-cli, libbitnet.so.0, the model, meta/snap.yaml)"


def pack(prime: Path, out_dir: Path, name: str, ver: str, arch: str) -> Path:
    """``snap pack``: validates meta/snap.yaml and the container (the app commands), then
    mksquashfs. Replaces an earlier .snap of the same name."""
    path = out_dir / f"{name}_{ver}_{arch}.snap"
    path.unlink(missing_ok=True)
    run(["snap", "pack", prime, out_dir])
    if not path.is_file():
        raise ReleaseError(f"snap pack did not write {path}")
    return path


# ---- the target --------------------------------------------------------------------------------

def build_and_check(out_dir: Path) -> list[Artifact]:
    for tool, package in TOOLS:
        require_tool(tool, package)
    ver = version()
    checks = [check_schema()]
    project = load_project()
    checks.append(check_project(project))
    arch, triplet = host_arch(), multiarch_triplet()
    if arch not in (project.get("platforms") or {arch: None}):
        raise ReleaseError(f"{SNAPCRAFT_YAML.name}: platforms do not include this host's {arch}")
    expected = reference_text()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bitnet-snap-") as tmp:
        work = Path(tmp)
        tree, _ = unpack_source(source_archive.build(out_dir), work / "src")
        variables = run_parts(project, tree, work / "craft")
        adopted = variables["version"] if "adopt-info" in project else str(project["version"])
        if adopted != ver:
            raise ReleaseError(f"the snap's version is {adopted!r} (adopt-info), bitnet.h says {ver!r}")
        checks.append(f"craft-parts {_craft_parts_version()}: pull, build, stage, prime; version {adopted} "
                      "set by the part (adopt-info) == bitnet.h")
        prime = work / "craft" / "prime"
        (prime / "meta").mkdir(exist_ok=True)
        (prime / "meta" / "snap.yaml").write_text(render_snap_yaml(project, ver, prime, arch, triplet),
                                                  encoding="utf-8")
        check_commands(project, prime)
        model = prime / "usr" / "share" / "bitnet" / DEFAULT_MODEL.name
        if not model.is_file() or sha256_file(model) != sha256_file(DEFAULT_MODEL):
            raise ReleaseError(f"prime: {model.relative_to(prime)} missing or not the repository's model")
        checks.append(check_elf(prime, project["base"]))
        checks.append(check_cli(prime, ver, expected, "prime/"))

        snap = pack(prime, out_dir, project["name"], ver, arch)
        checks.append("snap pack (snap.yaml and container validated)")
        checks.append(check_snap_contents(snap, triplet, ver))
        unpacked = work / "unpacked"
        run(["unsquashfs", "-q", "-n", "-d", unpacked, snap])
        check_commands(project, unpacked)
        checks.append(check_cli(unpacked, ver, expected, "the unpacked .snap"))
    return [Artifact(snap, checks)]


def _craft_parts_version() -> str:
    import craft_parts

    return craft_parts.__version__
