"""The `brew` release target: ``packaging/release.py brew`` renders homebrew/bitnet.rb with the sha256
of the source archive and checks it (ruby -wc, rubocop, the Formula stand-in running its install
and test blocks).

The orchestrator runs as a subprocess, exactly as a release is made. The stand-in is also run
directly on a tiny fixture formula, to show that it fails when it should: a wrong sha256, a failing
``test do``, a failing ``install``. Skipped without ruby/rubocop/cmake/cc/pkgconf, except under
.ci/run (BITNET_CI=1), where that fails instead.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "packaging" / "release.py"
RUNNER = ROOT / "homebrew" / "standin" / "run_formula.rb"
HEADER = ROOT / "bindings_c" / "include" / "bitnet.h"
VERSION = re.search(r'#define BITNET_VERSION_STRING "([^"]+)"', HEADER.read_text()).group(1)
STRICT = os.environ.get("BITNET_CI") == "1"  # .ci/run: missing tools fail instead of skipping

sys.path.insert(0, str(ROOT / "packaging"))
from bnpack import brew  # noqa: E402
from bnpack.common import ReleaseError, parse_summary  # noqa: E402


def _need(*tools: str) -> None:
    packages = dict(brew.TOOLS)
    for tool in tools:
        if shutil.which(tool) is None:
            (pytest.fail if STRICT else pytest.skip)(f"{tool} is not installed (apt package {packages[tool]})")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- fast: the template ------------------------------------------------------------------------

def test_template_renders_every_placeholder():
    text = brew.render(brew.TEMPLATE.read_text(), {"VERSION": "9.8.7", "SHA256": "ab" * 32})
    assert not brew.PLACEHOLDER.search(text)
    assert 'url "https://github.com/bitnet-engine/bitnet/releases/download/v9.8.7/bitnet-9.8.7.tar.gz"' in text
    assert f'sha256 "{"ab" * 32}"' in text
    with pytest.raises(ReleaseError, match="@SHA256@"):
        brew.render(brew.TEMPLATE.read_text(), {"VERSION": "9.8.7"})


def test_template_follows_the_rules():
    text = brew.TEMPLATE.read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "bottle do" not in code  # bottles are written by Homebrew's CI, never by hand
    assert "-march" not in code and "runtime_cpu_detection" not in code  # the kernels choose at run time
    assert "*std_cmake_args" in text and 'depends_on "cmake" => :build' in text
    assert "-DBITNET_BUILD_EXAMPLES=OFF" in text and "-DBITNET_INSTALL_DEFAULT_MODEL=ON" in text


def test_ruby_warnings_are_errors(tmp_path):
    _need("ruby")
    formula = tmp_path / "warns.rb"
    formula.write_text("class Warns < Formula\n  def install\n    unused = 1\n  end\nend\n")
    with pytest.raises(ReleaseError, match="unused"):
        brew.check_syntax(formula)


# ---- fast: the stand-in on a fixture formula ---------------------------------------------------

FIXTURE = """\
class Hello < Formula
  desc "Fixture for the Formula stand-in"
  homepage "https://example.org/hello"
  url "https://example.org/hello-1.0.tar.gz"
  sha256 "@SHA256@"
  license "MIT"

  def install
    @INSTALL@
    bin.install "hello"
  end

  test do
    assert_equal "hello @EXPECT@\\n", shell_output("#{bin}/hello")
  end
end
"""


def _hello_archive(tmp_path: Path) -> Path:
    """hello-1.0.tar.gz: one script, hello-1.0/hello, printing `hello 1.0`."""
    script = b"#!/bin/sh\necho 'hello 1.0'\n"
    path = tmp_path / "hello-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("hello-1.0/hello")
        info.size, info.mode = len(script), 0o755
        tar.addfile(info, io.BytesIO(script))
    return path


def _run_standin(tmp_path: Path, *, sha256: str | None = None, install: str = 'system "sh", "-n", "hello"',
                 expect: str = "1.0") -> subprocess.CompletedProcess[str]:
    _need("ruby")
    archive = _hello_archive(tmp_path)
    formula = tmp_path / "hello.rb"
    formula.write_text(FIXTURE.replace("@SHA256@", sha256 or _sha256(archive))
                       .replace("@INSTALL@", install).replace("@EXPECT@", expect))
    return subprocess.run(["ruby", "-w", RUNNER, formula, archive], capture_output=True, text=True, timeout=60)


def test_rubocop_offenses_in_the_formula_are_errors(tmp_path):
    _need("rubocop")
    formula = tmp_path / "bitnet.rb"
    formula.write_text(brew.render(brew.TEMPLATE.read_text(), {"VERSION": "9.8.7", "SHA256": "ab" * 32})
                       .replace("  def install\n", "  def install\n    unused = 1\n"))
    with pytest.raises(ReleaseError, match="Lint/UselessAssignment"):
        brew.check_style(formula)


def test_standin_passes_a_good_formula(tmp_path):
    proc = _run_standin(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hello 1.0: install passed" in proc.stdout
    assert "hello 1.0: test do passed" in proc.stdout


def test_standin_refuses_an_archive_with_another_sha256(tmp_path):
    proc = _run_standin(tmp_path, sha256="0" * 64)
    assert proc.returncode == 1
    assert "SHA256 mismatch" in proc.stderr
    assert "install passed" not in proc.stdout  # refused before anything ran


def test_standin_fails_when_test_do_fails(tmp_path):
    proc = _run_standin(tmp_path, expect="9.9.9")
    assert proc.returncode == 1
    assert "install passed" in proc.stdout
    assert "Minitest::Assertion (at hello.rb:14)" in proc.stderr, proc.stderr


def test_standin_fails_when_install_fails(tmp_path):
    proc = _run_standin(tmp_path, install='system "false"')
    assert proc.returncode == 1
    assert "BuildError" in proc.stderr and "failed: false" in proc.stderr


# ---- slow: the whole target --------------------------------------------------------------------

@pytest.fixture(scope="module")
def release(tmp_path_factory):
    _need(*(tool for tool, _ in brew.TOOLS))
    out = tmp_path_factory.mktemp("brew")
    proc = subprocess.run([sys.executable, RELEASE, "brew", "--out", out],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"release.py brew exited {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    return out, proc


def test_formula_carries_the_archive_sha256(release):
    out, _ = release
    archive = out / f"bitnet-{VERSION}.tar.gz"
    text = (out / "bitnet.rb").read_text()
    assert re.findall(r'^  sha256 "([0-9a-f]{64})"$', text, re.M) == [_sha256(archive)]
    assert re.findall(r'^  url "(\S+)"$', text, re.M) == [
        f"https://github.com/bitnet-engine/bitnet/releases/download/v{VERSION}/{archive.name}"]
    assert not brew.PLACEHOLDER.search(text)


def test_brew_target_ran_its_checks(release):
    out, proc = release
    digest, checks = parse_summary(proc.stdout)["bitnet.rb"]
    assert digest == _sha256(out / "bitnet.rb")
    for check in ("ruby -wc", "rubocop", "stand-in install + test do"):
        assert check in checks
    # The stand-in really ran both blocks, and the test block reached bitnet-cli.
    log = proc.stderr  # the tools' output; stdout holds the summary
    assert f"bitnet {VERSION}: install passed" in log
    assert re.search(rf"bitnet {re.escape(VERSION)}: test do passed \(\d+ assertions\)", log)
    assert "bin/bitnet-cli -p 'And God said' -n 16 --temp 0" in log
