# frozen_string_literal: true

# A stand-in for the part of Homebrew's Formula DSL that homebrew/bitnet.rb uses, so that its
# `install` and `test do` blocks can run where Homebrew cannot (run_formula.rb drives it).
#
# It follows Homebrew where a formula can tell the difference: `system` raises when a command
# fails, `shell_output` checks the exit status, the assertions are Minitest's (as in `brew test`),
# paths are Pathnames, `std_cmake_args` is Homebrew's list. Anything else a formula calls is
# missing on purpose and fails loudly (NoMethodError): this is a test harness, not Homebrew.

require "fileutils"
require "minitest"
require "pathname"
require "rbconfig"

# What `system` raises, as Homebrew's BuildError does.
class BuildError < RuntimeError; end

# Homebrew adds Pathname#install: copy files into a folder, creating it first.
class Pathname
  def install(*sources)
    mkpath
    sources.flatten.each { |source| FileUtils.cp_r(source.to_s, to_s) }
  end
end

# Homebrew extends ENV with helpers for the compiler and search paths.
module StandinENV
  # The C compiler: Homebrew picks its own; here $CC, else the system's cc.
  def cc
    fetch("CC", "cc")
  end

  def prepend_path(key, path)
    self[key] = [path.to_s, self[key]].compact.reject(&:empty?).join(File::PATH_SEPARATOR)
  end
end
ENV.extend(StandinENV)

# The Formula base class: the class-level stanzas and the instance helpers of Homebrew's.
class Formula
  include FileUtils
  include Minitest::Assertions

  class << self
    attr_reader :stable_url, :stable_sha256

    def url(value, **_options)
      @stable_url = value
    end

    def sha256(value)
      @stable_sha256 = value
    end

    # Explicit, or parsed from the url's file name as Homebrew does (NAME-1.2.3.tar.gz).
    def version(value = nil)
      @version = value if value
      @version || File.basename(stable_url.to_s)[/[-_]v?(\d+(?:\.\d+)+)\.(?:tar|tgz|zip)/, 1]
    end

    # Stanzas only Homebrew itself acts on (metadata, dependencies, livecheck, bottles): accepted
    # and ignored. The dependencies must already be on this machine (packaging/apt-packages.txt).
    [:desc, :homepage, :license, :mirror, :revision, :head, :depends_on, :uses_from_macos, :livecheck,
     :bottle].each do |stanza|
      define_method(stanza) { |*_args, **_options, &_block| nil }
    end

    # `test do ... end` defines the method that `brew test` calls.
    def test(&block)
      define_method(:test, &block)
    end
  end

  attr_reader :name, :prefix, :opt_prefix, :testpath
  attr_writer :assertions

  def initialize(name, prefix:, opt_prefix:, testpath:)
    super()
    @name = name
    @prefix = prefix
    @opt_prefix = opt_prefix
    @testpath = testpath
  end

  # Minitest::Assertions counts the assertions it makes.
  def assertions
    @assertions ||= 0
  end

  def version
    self.class.version
  end

  { bin: "bin", lib: "lib", include: "include", share: "share", libexec: "libexec", man1: "share/man/man1" }
    .each do |method, subdir|
      define_method(method) { prefix/subdir }
      define_method(:"opt_#{method}") { opt_prefix/subdir }
    end

  def pkgshare
    share/name
  end

  def shared_library(name)
    "#{name}.#{macos? ? "dylib" : "so"}"
  end

  def rpath(source: bin, target: lib)
    "#{macos? ? "@loader_path" : "$ORIGIN"}/#{target.relative_path_from(source)}"
  end

  # Homebrew's list, less -DCMAKE_PROJECT_TOP_LEVEL_INCLUDES (a file inside Homebrew that makes
  # FetchContent fail; nothing here downloads).
  def std_cmake_args(install_prefix: prefix, install_libdir: "lib", find_framework: "LAST")
    %W[
      -DCMAKE_INSTALL_PREFIX=#{install_prefix}
      -DCMAKE_INSTALL_LIBDIR=#{install_libdir}
      -DCMAKE_BUILD_TYPE=Release
      -DCMAKE_FIND_FRAMEWORK=#{find_framework}
      -DCMAKE_VERBOSE_MAKEFILE=ON
      -Wno-dev
      -DBUILD_TESTING=OFF
    ]
  end

  # One string runs through the shell, several run without one: Kernel#system's rule, as in brew.
  def system(cmd, *args)
    line = [cmd, *args].join(" ")
    puts "==> #{line}"
    return if Kernel.system(cmd.to_s, *args.map(&:to_s))

    raise BuildError, "failed: #{line} (#{Process.last_status})"
  end

  def shell_output(cmd, result = 0)
    puts "==> #{cmd}"
    output = `#{cmd}`
    assert_equal result, Process.last_status.exitstatus, "exit status of: #{cmd}"
    output
  end

  # Replace text in files; like brew, fail when nothing changed (the file is not what the formula thinks).
  def inreplace(paths, before, after)
    Array(paths).each do |path|
      text = File.read(path)
      changed = text.gsub(before.is_a?(Regexp) ? before : before.to_s, after.to_s)
      raise BuildError, "inreplace failed: #{path} does not contain #{before}" if changed == text

      File.write(path, changed)
    end
  end

  private

  def macos?
    RbConfig::CONFIG["host_os"].include?("darwin")
  end
end
