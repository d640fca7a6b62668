#!/usr/bin/env ruby
# frozen_string_literal: true

# Run a formula's `install` and `test do` blocks as `brew install --build-from-source` and
# `brew test` would, on a machine without Homebrew:
#
#   ruby homebrew/standin/run_formula.rb FORMULA.rb ARCHIVE
#
# 1. ARCHIVE stands in for the download: its sha256 must equal the formula's, and its file name
#    the url's.
# 2. It is unpacked into a temporary folder; `install` runs in its single top folder, into the
#    prefix TMP/Cellar/NAME/VERSION (with TMP/opt/NAME linked to it, as Homebrew's opt_prefix).
# 3. The source tree is deleted, and `test do` runs in a fresh testpath.
# Exit status 0 when all of it passes, 1 (the reason on stderr) otherwise.

require "digest"
require "etc"
require "tmpdir"
require_relative "formula"

# The one Formula subclass that FORMULA.rb defines, named after the file as Homebrew requires.
def load_formula(path)
  load File.expand_path(path)
  classes = Formula.subclasses
  raise "#{path}: defines #{classes.size} Formula classes, expected 1" if classes.size != 1

  expected = File.basename(path, ".rb").split(/[-_]/).map(&:capitalize).join
  raise "#{path}: class #{classes.first} should be named #{expected}" if classes.first.name != expected

  classes.first
end

def verify_download(klass, archive)
  url_name = File.basename(klass.stable_url.to_s)
  raise "the url names #{url_name}, not #{File.basename(archive)}" if url_name != File.basename(archive)

  actual = Digest::SHA256.file(archive).hexdigest
  return if actual == klass.stable_sha256

  raise "SHA256 mismatch for #{archive}\n  formula: #{klass.stable_sha256}\n  archive: #{actual}"
end

# Homebrew builds from the archive's single top folder, if it has one.
def unpack(archive, into)
  into.mkpath
  raise "cannot unpack #{archive}" unless Kernel.system("tar", "-xf", archive.to_s, "-C", into.to_s)

  entries = into.children
  (entries.size == 1 && entries.first.directory?) ? entries.first : into
end

# Environment variables the installed software reads would not pass Homebrew's filtered
# environment; drop them so that the test sees what a brew user gets.
def clean_environment
  ENV.keys.grep(/\ABITNET_/).each { |key| ENV.delete(key) }
  ENV["MAKEFLAGS"] ||= "-j#{Etc.nprocessors}"
end

def run_install(formula, archive, work)
  source = unpack(archive, work/"src")
  Dir.chdir(source) { formula.install }
  raise "empty installation: #{formula.prefix}" if !formula.prefix.directory? || formula.prefix.empty?

  formula.opt_prefix.dirname.mkpath
  formula.opt_prefix.make_symlink(formula.prefix)
  (work/"src").rmtree
end

# As `brew test` on Linux (Homebrew's Stdenv): the formula's include and lib directories are on
# the compiler's search paths and in LD_RUN_PATH, so a test program finds the library at run time.
def run_test(formula)
  formula.testpath.mkpath
  ENV["HOME"] = formula.testpath.to_s
  if RbConfig::CONFIG["host_os"].include?("linux")
    ENV.prepend_path "CPATH", formula.include
    ENV.prepend_path "LIBRARY_PATH", formula.lib
    ENV.prepend_path "LD_RUN_PATH", formula.lib
  end
  Dir.chdir(formula.testpath) { formula.test }
end

def main(formula_path, archive)
  klass = load_formula(formula_path)
  raise "#{formula_path}: no version in the url, and no version stanza" if klass.version.nil?

  verify_download(klass, archive)
  clean_environment
  Dir.mktmpdir("standin-") do |tmp|
    work = Pathname(tmp)
    name = File.basename(formula_path, ".rb")
    formula = klass.new(name, prefix: work/"Cellar"/name/klass.version, opt_prefix: work/"opt"/name,
                              testpath: work/"test")
    run_install(formula, archive, work)
    puts "==> #{name} #{klass.version}: install passed"
    run_test(formula)
    puts "==> #{name} #{klass.version}: test do passed (#{formula.assertions} assertions)"
  end
end

# Where in the formula it failed: the first backtrace line inside the formula file.
def formula_line(error, formula_path)
  line = error.backtrace&.find { |frame| frame.start_with?(File.expand_path(formula_path)) }
  line ? " (at #{File.basename(line.split(":in ").first)})" : ""
end

if ARGV.size != 2
  warn "usage: run_formula.rb FORMULA.rb ARCHIVE"
  exit 2
end
begin
  main(*ARGV)
rescue StandardError, Minitest::Assertion => e
  warn "run_formula.rb: #{e.class}#{formula_line(e, ARGV[0])}: #{e.message}"
  exit 1
end
