#!/bin/sh
# install.sh: install bitnet (bitnet-cli, libbitnet and the default model) from a bitnet release.
#
#   curl -fsSL https://github.com/bitnet-engine/bitnet/releases/download/vVERSION/install.sh | sh
#   sh install.sh --prefix /opt/bitnet --from ./dist
#   sh install.sh --help
#
# What it installs, and from what:
#   default     the release's source archive bitnet-VERSION.tar.gz, built with CMake and a C
#               compiler (needs cmake >= 3.16 and cc/gcc/clang) and installed into PREFIX
#               (default: $HOME/.local): bin/bitnet-cli, lib/libbitnet.*, include/bitnet.h,
#               lib/pkgconfig/bitnet.pc, lib/cmake/bitnet/, share/bitnet/bitnet-english-i2_s.gguf
#               (the default model bitnet-cli finds by itself) and the man page. Works on any
#               Linux or macOS with a compiler, whatever its distribution or libc.
#   --python    the release's Python wheel (libbitnet-VERSION-cp39-abi3-PLATFORM.whl) with pip:
#               the `bitnet` module and the `bitnet` command, into the active virtual
#               environment, else the user's site-packages (pip install --user). No compiler.
#
# Every downloaded file is checked against the release's SHA256SUMS before it is used. The
# script never calls sudo: if PREFIX is not writable it says so and stops. Running it again
# for a version already installed in PREFIX does nothing (--force reinstalls). Written for
# POSIX sh (checked with shellcheck -s sh).
set -eu

# packaging/release.py writes the release's version here (the copy in the repository keeps
# the placeholder: it then needs --version, or a --from whose SHA256SUMS names one version).
DEFAULT_VERSION='@VERSION@'
RELEASES='https://github.com/bitnet-engine/bitnet/releases/download'
PROG='install.sh'

usage() {
    cat <<EOF
Usage: sh install.sh [OPTIONS]

Install bitnet-cli, libbitnet and the default model from a bitnet release.

Options:
  --prefix DIR     install into DIR (default: \$HOME/.local); DIR/bin/bitnet-cli
  --from DIR|URL   the release: a directory or a URL holding SHA256SUMS and the release files
                   (default: $RELEASES/vVERSION/)
  --version X.Y.Z  the version to install (default: this script's release$(version_note))
  --python         install the Python wheel with pip instead (PYTHON=... picks the interpreter,
                   default python3; into its virtual environment, else pip install --user)
  --force          reinstall even if this version is already installed in DIR
  --dry-run        download and verify, then show what would be done; change nothing
  -h, --help       show this help

Building from the source archive needs cmake (>= 3.16) and a C compiler (cc, gcc or clang).
Every file is checked against the release's SHA256SUMS. The script never runs sudo.
EOF
}

version_note() {
    case $DEFAULT_VERSION in
        @*@) printf ', none in this copy' ;;
        *) printf ', %s' "$DEFAULT_VERSION" ;;
    esac
}

info() { printf '==> %s\n' "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}
usage_error() {
    printf '%s: %s\n(sh install.sh --help lists the options)\n' "$PROG" "$*" >&2
    exit 2
}
have() { command -v "$1" >/dev/null 2>&1; }

# ---- options --------------------------------------------------------------------------------
prefix=''
from=''
version=''
python_mode=0
force=0
dry_run=0
while [ $# -gt 0 ]; do
    opt=$1
    shift
    case $opt in
        --prefix | --from | --version)
            if [ $# -eq 0 ] || [ -z "$1" ]; then usage_error "$opt needs a value"; fi
            case $opt in
                --prefix) prefix=$1 ;;
                --from) from=$1 ;;
                --version) version=$1 ;;
            esac
            shift
            ;;
        --prefix=*) prefix=${opt#*=} ;;
        --from=*) from=${opt#*=} ;;
        --version=*) version=${opt#*=} ;;
        --python) python_mode=1 ;;
        --force) force=1 ;;
        --dry-run) dry_run=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) usage_error "unknown option: $opt" ;;
    esac
done
case $version in
    '' | [0-9]*) ;;
    *) usage_error "--version $version: expected a version such as 0.1.0 (no leading v)" ;;
esac
if [ "$python_mode" = 1 ] && [ -n "$prefix" ]; then
    usage_error "--prefix does not apply to --python (pip installs into the virtual environment or the user site)"
fi

# Relative paths are taken from the current directory (CMake would take them from its build folder).
absolute() {
    case $1 in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s/%s\n' "$(pwd)" "$1" ;;
    esac
}

case $from in
    http://* | https://*) from_is_url=1 ;;
    '') from_is_url=1 ;;
    *)
        from_is_url=0
        [ -d "$from" ] || die "--from $from: no such directory"
        from=$(absolute "$from")
        ;;
esac

if [ -z "$version" ]; then
    case $DEFAULT_VERSION in
        @*@) ;;
        *) version=$DEFAULT_VERSION ;;
    esac
fi
if [ -z "$version" ] && [ -z "$from" ]; then
    die "which version? This copy of install.sh is not from a release: pass --version X.Y.Z or --from DIR"
fi

# ---- the tools every mode needs -------------------------------------------------------------
if have sha256sum; then
    sha256() { sha256sum "$1" | awk '{ print $1 }'; }
elif have shasum; then
    sha256() { shasum -a 256 "$1" | awk '{ print $1 }'; }
elif have openssl; then
    sha256() { openssl dgst -sha256 "$1" | awk '{ print $NF }'; }
else
    die "no sha256sum, shasum or openssl: one is needed to verify the download"
fi
if [ "$from_is_url" = 1 ] && ! have curl && ! have wget; then
    die "neither curl nor wget found: install one, or download the release files and pass --from DIR"
fi

tmp=$(mktemp -d 2>/dev/null || mktemp -d -t bitnet-install)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# fetch NAME: the release's file NAME into $tmp/NAME.
fetch() {
    if [ "$from_is_url" = 1 ]; then
        url="${from%/}/$1"
        info "downloading $url"
        if have curl; then
            curl -fsSL --retry 3 -o "$tmp/$1" "$url" || die "cannot download $url"
        else
            wget -q -O "$tmp/$1" "$url" || die "cannot download $url"
        fi
    else
        [ -f "$from/$1" ] || die "$from/$1: no such file (is --from a bitnet release directory?)"
        cp "$from/$1" "$tmp/$1"
    fi
}

# The file names SHA256SUMS lists ("HASH  NAME" or "HASH *NAME"), one a line.
listed_names() { awk 'NF == 2 { n = $2; sub(/^\*/, "", n); print n }' "$tmp/SHA256SUMS"; }

# verify NAME: $tmp/NAME has the sha256 SHA256SUMS gives it.
verify() {
    want=$(awk -v f="$1" 'NF == 2 { n = $2; sub(/^\*/, "", n); if (n == f) { print $1; exit } }' "$tmp/SHA256SUMS")
    [ -n "$want" ] || die "SHA256SUMS of the release does not list $1"
    got=$(sha256 "$tmp/$1")
    if [ "$got" != "$want" ]; then
        die "$1: sha256 mismatch: SHA256SUMS says $want, the file has $got. The file is corrupt or was tampered with; nothing was installed."
    fi
    info "$1: sha256 verified"
}

# ---- the release: SHA256SUMS, and the version ----------------------------------------------
# The release of an unknown version is a directory whose SHA256SUMS names its source archive.
if [ -z "$from" ]; then
    from="$RELEASES/v$version/"
fi
fetch SHA256SUMS
if [ -z "$version" ]; then
    version=$(listed_names | sed -n 's/^bitnet-\([0-9][0-9A-Za-z.+~]*\)\.tar\.gz$/\1/p')
    case $version in
        '') die "SHA256SUMS in $from names no bitnet-VERSION.tar.gz: pass --version" ;;
        *[!0-9A-Za-z.+~]*) die "SHA256SUMS in $from names several versions: pass --version" ;;
    esac
    info "version $version (from SHA256SUMS)"
fi

# ---- --python: the wheel with pip -----------------------------------------------------------
if [ "$python_mode" = 1 ]; then
    py=${PYTHON:-python3}
    have "$py" || die "$py not found (PYTHON=/path/to/python selects another interpreter)"
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "$py is older than Python 3.9"
    "$py" -m pip --version >/dev/null 2>&1 || die "$py has no pip: install it (Debian/Ubuntu: apt-get install python3-pip)"
    os=$(uname -s)
    arch=$(uname -m)
    musl=0
    if [ "$os" = Linux ] && ldd --version 2>&1 | grep -qi musl; then musl=1; fi
    wheel=''
    listed_names >"$tmp/names"
    while IFS= read -r name; do
        case $name in "libbitnet-$version-cp39-abi3-"*.whl) ;; *) continue ;; esac
        case $os:$musl:$name in
            Linux:0:*manylinux*_"$arch".whl | Linux:1:*musllinux*_"$arch".whl) wheel=$name ;;
            Darwin:*:*macosx*_"$arch".whl | Darwin:*:*macosx*_universal2.whl) wheel=$name ;;
        esac
        if [ -n "$wheel" ]; then break; fi
    done <"$tmp/names"
    [ -n "$wheel" ] || die "the release has no libbitnet $version wheel for $os $arch; try: $py -m pip install libbitnet==$version (PyPI), or drop --python to build from source"
    fetch "$wheel"
    verify "$wheel"
    if [ "$("$py" -c 'import sys; print(int(sys.prefix != sys.base_prefix))')" = 1 ]; then
        where="the virtual environment of $py"
        set -- "$py" -m pip install --disable-pip-version-check "$tmp/$wheel"
    else
        where="the user site of $py"
        set -- "$py" -m pip install --disable-pip-version-check --user "$tmp/$wheel"
    fi
    if [ "$dry_run" = 1 ]; then
        info "dry run: would install $wheel into $where with: $*"
        exit 0
    fi
    info "installing $wheel into $where"
    if ! "$@" >&2; then
        die "pip failed. If it says externally-managed-environment, use a virtual environment: $py -m venv ~/.venvs/bitnet && PYTHON=~/.venvs/bitnet/bin/python sh install.sh --python"
    fi
    installed=$("$py" -c 'import bitnet; print(bitnet.__version__)') || die "import bitnet fails after the install"
    [ "$installed" = "$version" ] || die "import bitnet gives version $installed, not $version"
    scripts=$("$py" -c 'import sys, sysconfig
user = sys.prefix == sys.base_prefix
scheme = (sysconfig.get_preferred_scheme("user") if hasattr(sysconfig, "get_preferred_scheme") else "posix_user") if user else None
print(sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts"))')
    printf 'bitnet %s installed for %s; its bitnet command is %s/bitnet\n' "$version" "$py" "$scripts"
    exit 0
fi

# ---- default: build the source archive into PREFIX ------------------------------------------
prefix=$(absolute "${prefix:-${HOME:?HOME is not set: pass --prefix}/.local}")
[ ! -e "$prefix" ] || [ -d "$prefix" ] || die "--prefix $prefix exists and is not a directory"
# The nearest existing folder must be writable; sudo is the user's decision, never this script's.
existing=$prefix
while [ ! -d "$existing" ]; do existing=$(dirname "$existing"); done
if [ ! -w "$existing" ]; then
    die "$prefix is not writable by $(id -un 2>/dev/null || echo you) ($existing is not). Choose a --prefix you can write (the default is \$HOME/.local), or run the script as a user who can: sudo sh install.sh --prefix $prefix (it does not call sudo itself)."
fi

cli="$prefix/bin/bitnet-cli"
manifest="$prefix/share/bitnet/install-manifest.txt"
# Installed already: the CLI says this version and every file of the last install is there.
if [ "$force" = 0 ] && [ -f "$manifest" ] && [ -x "$cli" ] &&
    [ "$("$cli" --version 2>/dev/null || true)" = "bitnet-cli $version" ]; then
    complete=1
    while IFS= read -r file; do
        if [ ! -e "$file" ]; then complete=0; fi
    done <"$manifest"
    if [ "$complete" = 1 ]; then
        info "bitnet $version is already installed in $prefix; nothing to do (--force reinstalls)"
        exit 0
    fi
fi

have cmake || die "cmake not found: building bitnet needs cmake >= 3.16 and a C compiler (Debian/Ubuntu: sudo apt-get install cmake gcc; Fedora: sudo dnf install cmake gcc; macOS: xcode-select --install; brew install cmake), or use --python"
if [ -z "${CC:-}" ]; then
    for compiler in cc gcc clang; do
        if have "$compiler"; then
            CC=$compiler
            break
        fi
    done
fi
[ -n "${CC:-}" ] || die "no C compiler (cc, gcc or clang) found: building bitnet needs one (Debian/Ubuntu: sudo apt-get install gcc; macOS: xcode-select --install), or use --python"
export CC

archive="bitnet-$version.tar.gz"
fetch "$archive"
verify "$archive"

jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
src="$tmp/bitnet-$version"
build="$tmp/build"
if [ "$dry_run" = 1 ]; then
    info "dry run: would build $archive with $CC and install it into $prefix:"
    info "  cmake -S $src -B $build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$prefix -DBITNET_BUILD_EXAMPLES=OFF"
    info "  cmake --build $build --parallel $jobs && cmake --install $build"
    info "dry run: nothing was changed"
    exit 0
fi

# step LOG COMMAND...: run it with its output in $tmp/LOG, shown only if it fails.
step() {
    log="$tmp/$1"
    shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "failed: $*"
    fi
}

info "building bitnet $version with $CC ($jobs jobs)"
(cd "$tmp" && tar -xzf "$archive") || die "cannot unpack $archive"
[ -f "$src/CMakeLists.txt" ] || die "$archive has no bitnet-$version/CMakeLists.txt"
step configure.log cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_INSTALL_PREFIX=$prefix" \
    -DBITNET_BUILD_EXAMPLES=OFF
step build.log cmake --build "$build" --parallel "$jobs"
info "installing into $prefix"
step install.log cmake --install "$build"
mkdir -p "$prefix/share/bitnet"
cp "$build/install_manifest.txt" "$manifest"

printed=$("$cli" --version 2>&1) || die "$cli --version failed: $printed"
[ "$printed" = "bitnet-cli $version" ] || die "$cli --version printed '$printed', expected 'bitnet-cli $version'"
printf 'bitnet %s installed in %s (files listed in %s)\n' "$version" "$prefix" "$manifest"
case ":${PATH:-}:" in
    *":$prefix/bin:"*) printf 'Try: bitnet-cli -p "And God said" -n 32\n' ;;
    *) printf "%s/bin is not on your PATH; add it, e.g.: export PATH=\"%s/bin:\$PATH\"\n" "$prefix" "$prefix" ;;
esac
