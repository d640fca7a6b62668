"""The `install-scripts` target: ``install.sh`` and ``install.ps1`` of this version, the scripts a
release offers next to its files (``curl -fsSL .../install.sh | sh``).

``packaging/install/install.{sh,ps1}`` are rendered into OUT with the version of bitnet.h in place
of their ``@VERSION@`` placeholder (the copies in the repository keep it and then take the version
from ``--version`` or from the SHA256SUMS of ``--from``). Checks:

1. ``shellcheck -s sh`` finds nothing in install.sh (template and rendered): it is POSIX sh;
2. install.ps1 parses with tree-sitter's PowerShell grammar with no ERROR or MISSING node, every
   command it calls is one of its own functions or a Windows PowerShell 5.1 cmdlet, and every
   variable it reads is assigned somewhere (PowerShell itself cannot run here: the real
   acceptance is a Windows runner);
3. install.sh, run with /bin/sh against OUT as a release directory (the source archive and
   SHA256SUMS, written here), into a new temporary prefix: ``--dry-run`` creates nothing; the
   install builds and installs bitnet, whose ``bitnet-cli --version`` is this version and whose
   greedy text from the default model equals the Python binding's; a second run changes nothing
   (it is already installed); ``--force`` reinstalls; a release whose archive was altered by one
   byte is refused with a sha256 mismatch before anything is installed.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import powershell, source_archive
from .usage_check import PROMPT, N_TOKENS, reference_text
from .common import (REPO, Artifact, CommandFailed, ReleaseError, log, require_tool, run, sha256_file, version,
                     write_sha256sums)

INSTALL = REPO / "packaging" / "install"
SH_TEMPLATE = INSTALL / "install.sh"
PS1_TEMPLATE = INSTALL / "install.ps1"
PLACEHOLDER = "'@VERSION@'"

# (program, Debian package that provides it)
TOOLS = (("shellcheck", "shellcheck"), ("sh", "dash"), ("cmake", "cmake"), ("cc", "gcc"),
         ("sha256sum", "coreutils"))

# Cmdlets of Windows PowerShell 5.1 (what every Windows 10/11 has) that install.ps1 may call.
PS_CMDLETS = {
    "add-content", "convertfrom-json", "convertto-json", "copy-item", "expand-archive", "foreach-object",
    "get-childitem", "get-command", "get-content", "get-filehash", "get-item", "invoke-restmethod",
    "invoke-webrequest", "join-path", "move-item", "new-item", "out-null", "out-string", "remove-item",
    "resolve-path", "select-object", "set-content", "set-strictmode", "sort-object", "split-path", "test-path",
    "where-object", "write-error", "write-host", "write-output", "write-verbose", "write-warning",
}
# Variables PowerShell defines itself (lower case, without $).
PS_AUTOMATIC = {"_", "args", "error", "false", "home", "host", "lastexitcode", "matches", "myinvocation", "null",
                "psscriptroot", "pwd", "true"}


def render(template: str, ver: str) -> str:
    """The script with the version in place of its one ``'@VERSION@'``."""
    if template.count(PLACEHOLDER) != 1:
        raise ReleaseError(f"install script template: expected one {PLACEHOLDER}, found {template.count(PLACEHOLDER)}")
    return template.replace(PLACEHOLDER, f"'{ver}'")


# ---- static checks -----------------------------------------------------------------------------

def check_shellcheck(path: Path) -> None:
    try:
        run(["shellcheck", "--shell=sh", "--format=gcc", path], capture=True)
    except CommandFailed as exc:
        raise ReleaseError(f"shellcheck -s sh {path.name}:\n{exc.output.strip()}") from exc


def _var_name(node) -> str:
    """``$Foo``, ``${Foo}``, ``$script:Foo`` -> ``foo``; ``$env:X`` -> ``env:x``."""
    name = node.text.decode().lstrip("$").strip("{}").lower()
    for scope in ("script:", "global:", "local:", "private:"):
        name = name.removeprefix(scope)
    return name


def powershell_problems(source: bytes) -> list[str]:
    """``line:col: what`` for each syntax error, each call of an unknown command and each
    variable read but never assigned (empty: none found)."""
    problems = powershell.syntax_errors(source)
    nodes = list(powershell.walk(powershell.parser().parse(source).root_node))

    functions = {child.text.decode().lower() for n in nodes if n.type == "function_statement"
                 for child in n.children if child.type == "function_name"}
    for node in nodes:
        if node.type == "command_name":
            name = node.text.decode()
            if name.lower() not in functions | PS_CMDLETS:
                row, col = node.start_point
                problems.append(f"{row + 1}:{col + 1}: unknown command {name!r} (not a function of the script "
                                "nor a Windows PowerShell 5.1 cmdlet of the list in install_scripts.py)")

    # Assigned: variables on the left of `=` (all of them: `$a, $b = ...`), parameters of the
    # script and its functions, foreach loop variables.
    assigned = set(PS_AUTOMATIC)
    for node in nodes:
        if node.type == "left_assignment_expression":
            assigned |= {_var_name(n) for n in powershell.walk(node) if n.type == "variable"}
        elif node.type in ("script_parameter", "foreach_statement"):
            assigned |= {_var_name(c) for c in node.children[:3] if c.type == "variable"}
    for node in nodes:
        if node.type == "variable":
            name = _var_name(node)
            if not name.startswith("env:") and name not in assigned:
                row, col = node.start_point
                problems.append(f"{row + 1}:{col + 1}: ${name} is read but never assigned")
    return problems


def check_powershell(path: Path) -> None:
    problems = powershell_problems(path.read_bytes())
    if problems:
        raise ReleaseError(f"{path.name} (tree-sitter-powershell):\n" + "\n".join(f"{path.name}:{p}" for p in problems))


# ---- install.sh against a release directory ----------------------------------------------------

def _script_env() -> dict[str, str]:
    """The environment of a user: no model or library path of ours."""
    return {k: v for k, v in os.environ.items() if k not in ("BITNET_DEFAULT_MODEL", "LD_LIBRARY_PATH", "CC")}


def run_install_sh(script: Path, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    cmd = ["sh", str(script), *map(str, args)]
    log("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, env=_script_env(), capture_output=True, text=True, cwd=tempfile.gettempdir())
    for line in (proc.stderr + proc.stdout).splitlines():
        log(f"install.sh: {line}")
    return proc


def _expect(proc: subprocess.CompletedProcess[str], status: int, what: str, *, says: str = "") -> None:
    if proc.returncode != status or says not in proc.stdout + proc.stderr:
        raise ReleaseError(f"install.sh {what}: exit status {proc.returncode} (expected {status})"
                           + (f", output lacks {says!r}" if says else "")
                           + f"\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def _tree_state(prefix: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(prefix)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(prefix.rglob("*")) if p.is_file()}


def check_installed_cli(prefix: Path, ver: str, expected: str) -> None:
    exe = prefix / "bin" / "bitnet-cli"
    printed = subprocess.run([exe, "--version"], env=_script_env(), capture_output=True, text=True)
    if printed.stdout.strip() != f"bitnet-cli {ver}":
        raise ReleaseError(f"installed bitnet-cli --version printed {printed.stdout.strip()!r}")
    proc = subprocess.run([exe, "-p", PROMPT, "-n", str(N_TOKENS), "--temp", "0"], env=_script_env(),
                          capture_output=True, text=True, cwd=tempfile.gettempdir())
    if proc.returncode != 0 or proc.stdout != expected + "\n":
        raise ReleaseError(f"installed bitnet-cli printed {proc.stdout!r} (exit {proc.returncode}: "
                           f"{proc.stderr.strip()}), the Python binding {expected!r}")
    log(f"installed bitnet-cli: {PROMPT}{expected}")


def check_install_sh(script: Path, release: Path, ver: str, work: Path) -> list[str]:
    """Run install.sh against the release directory ``release`` the ways a user would."""
    expected = reference_text()
    prefix = work / "prefix" / "bitnet"

    _expect(run_install_sh(script, "--from", release, "--prefix", prefix, "--dry-run"), 0, "--dry-run",
            says="nothing was changed")
    if (work / "prefix").exists():
        raise ReleaseError(f"install.sh --dry-run created {work / 'prefix'}")

    _expect(run_install_sh(script, "--from", release, "--prefix", prefix), 0, "install", says="installed in")
    check_installed_cli(prefix, ver, expected)
    before = _tree_state(prefix)
    _expect(run_install_sh(script, "--from", release, "--prefix", prefix), 0, "second run",
            says="already installed")
    if _tree_state(prefix) != before:
        raise ReleaseError("install.sh run a second time changed the installed files")
    _expect(run_install_sh(script, "--from", release, "--prefix", prefix, "--force"), 0, "--force",
            says="installed in")
    if set(_tree_state(prefix)) != set(before):
        raise ReleaseError("install.sh --force installed another set of files")
    check_installed_cli(prefix, ver, expected)

    # The same release with its archive altered by one byte: refused before anything is installed.
    tampered = work / "tampered"
    tampered.mkdir()
    archive = f"bitnet-{ver}.tar.gz"
    shutil.copy2(release / "SHA256SUMS", tampered)
    data = bytearray((release / archive).read_bytes())
    data[len(data) // 2] ^= 0x01
    (tampered / archive).write_bytes(bytes(data))
    other = work / "prefix2"
    _expect(run_install_sh(script, "--from", tampered, "--prefix", other), 1, "with an altered archive",
            says=f"{archive}: sha256 mismatch")
    if other.exists():
        raise ReleaseError("install.sh created the prefix although the archive's sha256 was wrong")
    return ["install.sh against the release directory: --dry-run creates nothing; installs; bitnet-cli "
            "--version and greedy text == the Python binding's; a second run changes nothing; --force "
            "reinstalls; an altered archive is refused (sha256 mismatch)"]


# ---- the target --------------------------------------------------------------------------------

def build_and_check(out_dir: Path) -> list[Artifact]:
    for tool, package in TOOLS:
        require_tool(tool, package)
    ver = version()
    out_dir.mkdir(parents=True, exist_ok=True)
    sh_path, ps1_path = out_dir / "install.sh", out_dir / "install.ps1"
    sh_path.write_text(render(SH_TEMPLATE.read_text(encoding="utf-8"), ver), encoding="utf-8")
    sh_path.chmod(0o755)
    ps1_path.write_text(render(PS1_TEMPLATE.read_text(encoding="utf-8"), ver), encoding="utf-8")

    for path in (SH_TEMPLATE, sh_path):
        check_shellcheck(path)
    for path in (PS1_TEMPLATE, ps1_path):
        check_powershell(path)
    if not re.search(rf"^DEFAULT_VERSION='{re.escape(ver)}'$", sh_path.read_text(), re.M):
        raise ReleaseError("install.sh: the version was not rendered")

    source_archive.build(out_dir)
    write_sha256sums(out_dir)
    log(f"SHA256SUMS in {out_dir}: {sha256_file(out_dir / 'SHA256SUMS')}")
    with tempfile.TemporaryDirectory(prefix="bitnet-install-sh-") as tmp:
        e2e = check_install_sh(sh_path, out_dir, ver, Path(tmp))
    return [Artifact(sh_path, ["shellcheck -s sh: clean", *e2e]),
            Artifact(ps1_path, ["tree-sitter-powershell: parses; commands are its functions or PowerShell 5.1 "
                                "cmdlets; every variable read is assigned"])]
