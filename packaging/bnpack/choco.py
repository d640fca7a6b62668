"""The `choco` target: the Chocolatey package of this version, for the Windows zip built and tested
here (windows_zip.py).

``chocolatey/bitnet.nuspec.in`` and ``chocolatey/tools/chocolateyinstall.ps1.in`` are rendered into
``OUT/chocolatey/`` (``dist/chocolatey/`` by default): the version from bitnet.h, and in the install
script the URL the zip will have on the release page and the sha256 of the zip just built. The
rendered files are not kept in git: their sha256 belongs to one zip. They are then packed into
``OUT/bitnet.VERSION.nupkg``.

PowerShell and choco cannot run on these machines; the checks are:

1. the nuspec validates against Chocolatey's nuspec schema (``chocolatey/schema/nuspec.xsd``, with
   the 2015/06 namespace filled in as NuGet does), with lxml; its id and version are bitnet's;
2. every .ps1 parses with tree-sitter's PowerShell grammar with no ERROR or MISSING node;
3. the install script's ``checksum64`` (read from the parse tree, not with a regex) is the zip's
   sha256, ``checksumType64`` is sha256, ``url64bit`` is the release URL of that zip, and it calls
   ``Install-ChocolateyZipPackage @packageArgs``;
4. the .nupkg: an OPC zip as NuGet 2's PackageBuilder (what ``choco pack`` runs) writes it: the
   nuspec without ``<files>``, tools/, ``_rels/.rels``, ``[Content_Types].xml`` and the core
   properties part; reopened, every part has a content type, the relationships point at parts that
   exist, the nuspec inside passes check 1 and the script inside is the checked one.

What only Windows can check (``choco pack``, ``choco install bitnet -s .`` downloading the published
zip, the shim, ``choco uninstall``) belongs to a Windows CI job on the published release.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import zipfile
from pathlib import Path
from typing import Mapping

from . import powershell, windows_zip
from .common import REPO, Artifact, ReleaseError, log, sha256_file, version

CHOCO = REPO / "chocolatey"
NUSPEC_TEMPLATE = CHOCO / "bitnet.nuspec.in"
TOOLS_TEMPLATES = CHOCO / "tools"
SCHEMA = CHOCO / "schema" / "nuspec.xsd"
NAMESPACE = "http://schemas.microsoft.com/packaging/2015/06/nuspec.xsd"
PACKAGE_ID = "bitnet"
RELEASES = "https://github.com/bitnet-engine/bitnet/releases/download"
INSTALL_SCRIPT = "tools/chocolateyinstall.ps1"

PLACEHOLDER = re.compile(r"@([A-Z0-9_]+)@")


def zip_url(ver: str, name: str) -> str:
    return f"{RELEASES}/v{ver}/{name}"


# ---- render ------------------------------------------------------------------------------------

def render(template: Path, values: Mapping[str, str]) -> str:
    """Fill the template's @NAME@ placeholders; one with no value is an error, never left behind."""
    def fill(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise ReleaseError(f"{template.name}: no value for {match.group(0)}")
        return values[match.group(1)]

    return PLACEHOLDER.sub(fill, template.read_text(encoding="utf-8"))


def render_package(dest: Path, ver: str, zip_path: Path) -> Path:
    """Render the nuspec and tools/ into ``dest`` (emptied first); returns the nuspec's path."""
    values = {"VERSION": ver, "ZIP": zip_path.name, "SHA256": sha256_file(zip_path)}
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "tools").mkdir(parents=True)
    nuspec = dest / f"{PACKAGE_ID}.nuspec"
    nuspec.write_text(render(NUSPEC_TEMPLATE, values), encoding="utf-8")
    for src in sorted(TOOLS_TEMPLATES.iterdir()):
        if src.name.endswith(".in"):
            (dest / "tools" / src.name[:-3]).write_text(render(src, values), encoding="utf-8")
        elif src.is_file():
            shutil.copyfile(src, dest / "tools" / src.name)
    return nuspec


# ---- check 1: the nuspec -----------------------------------------------------------------------

def _lxml():
    try:
        from lxml import etree
    except ImportError as exc:
        raise ReleaseError("python module `lxml` not found: pip install -r packaging/requirements.txt") from exc
    return etree


def check_nuspec_bytes(data: bytes, name: str, ver: str | None = None) -> None:
    """Validate a nuspec against chocolatey/schema/nuspec.xsd; with ``ver``, also its id and version."""
    etree = _lxml()
    schema_text = SCHEMA.read_text(encoding="utf-8-sig").replace("{0}", NAMESPACE)
    schema = etree.XMLSchema(etree.fromstring(schema_text.encode("utf-8")))
    try:
        doc = etree.fromstring(data)
    except etree.XMLSyntaxError as exc:
        raise ReleaseError(f"{name}: not well-formed XML: {exc}") from exc
    if doc.tag != f"{{{NAMESPACE}}}package":
        raise ReleaseError(f"{name}: root element {doc.tag}, expected <package xmlns=\"{NAMESPACE}\">")
    if not schema.validate(doc):
        errors = "\n".join(f"{name}:{e.line}: {e.message}" for e in schema.error_log)
        raise ReleaseError(f"{name} does not validate against {SCHEMA.relative_to(REPO)}:\n{errors}")
    if ver is not None:
        meta = {el.tag.split("}")[1]: (el.text or "") for el in doc.find(f"{{{NAMESPACE}}}metadata")}
        if meta.get("id") != PACKAGE_ID or meta.get("version") != ver:
            raise ReleaseError(f"{name}: id {meta.get('id')!r} version {meta.get('version')!r}, "
                               f"expected {PACKAGE_ID!r} {ver!r}")


def check_nuspec(path: Path, ver: str | None = None) -> None:
    check_nuspec_bytes(path.read_bytes(), path.name, ver)


# ---- checks 2 and 3: the PowerShell ------------------------------------------------------------

def check_powershell(path: Path) -> None:
    errors = powershell.syntax_errors(path.read_bytes())
    if errors:
        raise ReleaseError(f"{path.name} does not parse as PowerShell (tree-sitter-powershell):\n"
                           + "\n".join(f"{path.name}:{e}" for e in errors))


def install_args(source: bytes) -> tuple[dict[str, str | None], list[str]]:
    """The script's hashtable entries (key -> the value of a '...' literal, None for anything else)
    and the commands it calls (their full text), from the parse tree."""
    tree = powershell.parser().parse(source)
    entries: dict[str, str | None] = {}
    commands = []
    for node in powershell.walk(tree.root_node):
        if node.type == "hash_entry":
            key = next((c for c in node.children if c.type == "key_expression"), None)
            value = node.named_children[-1] if node.named_children else None
            if key is None or value is None or value is key:
                continue
            text = value.text.decode("utf-8").strip()
            literal = re.fullmatch(r"'((?:[^']|'')*)'", text)
            entries[key.text.decode("utf-8")] = literal.group(1).replace("''", "'") if literal else None
        elif node.type == "command":
            commands.append(" ".join(node.text.decode("utf-8").split()))
    return entries, commands


def check_install_script(source: bytes, name: str, zip_path: Path, ver: str) -> None:
    """Check 3: the script installs exactly this zip, from its release URL."""
    entries, commands = install_args(source)
    want = {"url64bit": zip_url(ver, zip_path.name), "checksum64": sha256_file(zip_path), "checksumType64": "sha256"}
    wrong = [f"{key} = {entries.get(key)!r}, expected {value!r}" for key, value in want.items()
             if entries.get(key) != value]
    if wrong:
        raise ReleaseError(f"{name} does not install {zip_path.name}:\n" + "\n".join(wrong))
    if "Install-ChocolateyZipPackage @packageArgs" not in commands:
        raise ReleaseError(f"{name} does not call Install-ChocolateyZipPackage @packageArgs (calls: {commands})")


# ---- check 4: the .nupkg -----------------------------------------------------------------------

OPC_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
OPC_TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
OPC_CORE = "http://schemas.openxmlformats.org/package/2006/metadata/core-properties"
CORE_REL = "http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties"
MANIFEST_REL = "http://schemas.microsoft.com/packaging/2010/07/manifest"
DC = "http://purl.org/dc/elements/1.1/"
# PackageBuilder's DefaultContentType for the manifest and every file.
OCTET = "application/octet"


def _xml(root) -> bytes:
    return _lxml().tostring(root, xml_declaration=True, encoding="utf-8")


def pack_nupkg(pkg_dir: Path, nuspec: Path, out_dir: Path,
               date_time: tuple[int, int, int, int, int, int] = (1980, 1, 1, 0, 0, 0)) -> Path:
    """``OUT/bitnet.VERSION.nupkg`` from the rendered package, laid out as PackageBuilder.Save does.
    Unlike choco pack it is reproducible: every entry has ``date_time``, and the core-properties part
    and relationship ids are named by a hash of the contents instead of a random GUID."""
    etree = _lxml()
    doc = etree.fromstring(nuspec.read_bytes())
    ns = {"n": NAMESPACE}
    files = doc.find("n:files", ns)
    if files is None or [(f.get("src"), f.get("target")) for f in files] != [("tools\\**", "tools")]:
        raise ReleaseError(f"{nuspec.name}: <files> must be exactly <file src=\"tools\\**\" target=\"tools\" />")
    doc.remove(files)  # the manifest inside a package lists no files
    meta = {el.tag.split("}")[1]: (el.text or "") for el in doc.find("n:metadata", ns)}
    ver = meta["version"]
    manifest = _xml(doc)

    parts: dict[str, bytes] = {f"{meta['id']}.nuspec": manifest}
    for path in sorted((pkg_dir / "tools").rglob("*")):
        if path.is_file():
            parts[path.relative_to(pkg_dir).as_posix()] = path.read_bytes()

    core = etree.Element(f"{{{OPC_CORE}}}coreProperties", nsmap={None: OPC_CORE, "dc": DC})
    for tag, text in ((f"{{{DC}}}creator", meta.get("authors", "")), (f"{{{DC}}}description", meta["description"]),
                      (f"{{{DC}}}identifier", meta["id"]), (f"{{{OPC_CORE}}}version", ver),
                      (f"{{{OPC_CORE}}}keywords", meta.get("tags", "")), (f"{{{DC}}}title", meta.get("title", "")),
                      (f"{{{OPC_CORE}}}lastModifiedBy", "bitnet packaging/release.py choco")):
        etree.SubElement(core, tag).text = text
    core_xml = _xml(core)
    digest = hashlib.sha256(b"".join(parts.values()) + core_xml).hexdigest()
    core_name = f"package/services/metadata/core-properties/{digest[:32]}.psmdcp"
    parts[core_name] = core_xml

    rels = etree.Element(f"{{{OPC_RELS}}}Relationships", nsmap={None: OPC_RELS})
    for n, (rel_type, target) in enumerate(((MANIFEST_REL, f"{meta['id']}.nuspec"), (CORE_REL, core_name))):
        etree.SubElement(rels, f"{{{OPC_RELS}}}Relationship", Type=rel_type, Target=f"/{target}",
                         Id=f"R{digest[32 + 16 * n:48 + 16 * n].upper()}")
    types = etree.Element(f"{{{OPC_TYPES}}}Types", nsmap={None: OPC_TYPES})
    etree.SubElement(types, f"{{{OPC_TYPES}}}Default", Extension="rels",
                     ContentType="application/vnd.openxmlformats-package.relationships+xml")
    etree.SubElement(types, f"{{{OPC_TYPES}}}Default", Extension="psmdcp",
                     ContentType="application/vnd.openxmlformats-package.core-properties+xml")
    for ext in sorted({name.rsplit(".", 1)[1].lower() for name in parts if "." in name.rsplit("/", 1)[-1]}
                      - {"rels", "psmdcp"}):
        etree.SubElement(types, f"{{{OPC_TYPES}}}Default", Extension=ext, ContentType=OCTET)

    entries = {"_rels/.rels": _xml(rels), **parts, "[Content_Types].xml": _xml(types)}
    out = out_dir / f"{meta['id']}.{ver}.nupkg"
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=9)
    return out


def check_nupkg(nupkg: Path, ver: str, zip_path: Path, script: Path) -> None:
    """Check 4 (see the module's docstring)."""
    etree = _lxml()
    with zipfile.ZipFile(nupkg) as zf:
        names = zf.namelist()
        read = zf.read
        if "[Content_Types].xml" not in names or "_rels/.rels" not in names:
            raise ReleaseError(f"{nupkg.name}: no [Content_Types].xml or _rels/.rels")
        types = etree.fromstring(read("[Content_Types].xml"))
        defaults = {el.get("Extension").lower() for el in types if el.tag == f"{{{OPC_TYPES}}}Default"}
        overrides = {el.get("PartName") for el in types if el.tag == f"{{{OPC_TYPES}}}Override"}
        untyped = [n for n in names if n != "[Content_Types].xml" and f"/{n}" not in overrides
                   and ("." not in n.rsplit("/", 1)[-1] or n.rsplit(".", 1)[1].lower() not in defaults)]
        if untyped:
            raise ReleaseError(f"{nupkg.name}: parts without a content type: {untyped}")
        targets = {el.get("Type"): el.get("Target").lstrip("/") for el in etree.fromstring(read("_rels/.rels"))}
        if set(targets) != {MANIFEST_REL, CORE_REL} or not set(targets.values()) <= set(names):
            raise ReleaseError(f"{nupkg.name}: bad package relationships {targets}")
        manifest = targets[MANIFEST_REL]
        if "/" in manifest or not manifest.endswith(".nuspec"):
            raise ReleaseError(f"{nupkg.name}: the manifest {manifest} is not a .nuspec at the root")
        check_nuspec_bytes(read(manifest), f"{nupkg.name}/{manifest}", ver)
        if etree.fromstring(read(manifest)).find(f"{{{NAMESPACE}}}files") is not None:
            raise ReleaseError(f"{nupkg.name}/{manifest} still has <files>")
        if INSTALL_SCRIPT not in names or read(INSTALL_SCRIPT) != script.read_bytes():
            raise ReleaseError(f"{nupkg.name}: {INSTALL_SCRIPT} is not the checked script")
        check_install_script(read(INSTALL_SCRIPT), f"{nupkg.name}/{INSTALL_SCRIPT}", zip_path, ver)


# ---- the target --------------------------------------------------------------------------------

def build_and_check(out_dir: Path) -> list[Artifact]:
    _lxml()
    powershell.parser()  # fail on a missing Python tool before the long build
    ver = version()
    zip_path, zip_checks = windows_zip.build(out_dir)
    pkg_dir = out_dir / "chocolatey"
    nuspec = render_package(pkg_dir, ver, zip_path)
    script = pkg_dir / INSTALL_SCRIPT
    log(f"chocolatey package {pkg_dir}: {zip_path.name}, sha256 {sha256_file(zip_path)}")

    check_nuspec(nuspec, ver)
    scripts = sorted(pkg_dir.rglob("*.ps1"))
    for ps1 in scripts:
        check_powershell(ps1)
    check_install_script(script.read_bytes(), script.name, zip_path, ver)
    with zipfile.ZipFile(zip_path) as zf:
        date_time = zf.infolist()[0].date_time  # the source archive's date
    nupkg = pack_nupkg(pkg_dir, nuspec, out_dir, date_time)
    check_nupkg(nupkg, ver, zip_path, script)
    log(f"{nupkg.name}: {nupkg.stat().st_size / 1e3:.1f} kB")

    parsed = f"tree-sitter-powershell: {len(scripts)} .ps1 parse with no ERROR/MISSING node"
    return [
        Artifact(zip_path, zip_checks),
        Artifact(nuspec, ["XSD (chocolatey/schema/nuspec.xsd, 2015/06 namespace)", f"id {PACKAGE_ID}, version {ver}"]),
        Artifact(script, [parsed, f"checksum64 == sha256 of {zip_path.name}", "url64bit == its release URL"]),
        Artifact(nupkg, ["OPC parts typed, relationships resolve", "nuspec inside: XSD",
                         "install script inside == the checked one"]),
    ]
