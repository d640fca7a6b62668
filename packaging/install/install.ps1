<#
.SYNOPSIS
Installs bitnet (bitnet-cli.exe, libbitnet.dll and the default model) from a bitnet release.

.DESCRIPTION
Downloads the release's SHA256SUMS and bitnet-VERSION-windows-x86_64.zip (or copies them from a
local release folder), checks the zip's sha256, unpacks it into $env:LOCALAPPDATA\bitnet
(bin\, lib\, include\, share\bitnet\ with the default model that bitnet-cli finds by itself) and
adds its bin folder to the user's PATH. No administrator rights are needed or asked for.

Running it again for the version already installed does nothing (-Force reinstalls). The install
folder is replaced only if this script made it (it holds .bitnet-install).

.PARAMETER From
A folder or URL holding the release files (SHA256SUMS and the zip). Default:
https://github.com/bitnet-engine/bitnet/releases/download/vVERSION/

.PARAMETER Version
The version to install, such as 0.1.0. Default: this script's release; a copy that is not from a
release takes the one version named in the SHA256SUMS of -From.

.PARAMETER InstallDir
Where to install. Default: $env:LOCALAPPDATA\bitnet

.PARAMETER Force
Reinstall even if this version is already installed.

.PARAMETER DryRun
Download and verify, then say what would be done; change nothing.

.PARAMETER NoModifyPath
Do not add the bin folder to the user's PATH.

.EXAMPLE
powershell -ExecutionPolicy Bypass -File install.ps1 -From .\dist

.EXAMPLE
& ([scriptblock]::Create((Invoke-RestMethod https://github.com/bitnet-engine/bitnet/releases/download/v0.1.0/install.ps1))) -DryRun
#>
[CmdletBinding()]
param(
    [string]$From = '',
    [string]$Version = '',
    [string]$InstallDir = '',
    [switch]$Force,
    [switch]$DryRun,
    [switch]$NoModifyPath
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'
# Invoke-WebRequest is many times slower when it draws a progress bar.
$ProgressPreference = 'SilentlyContinue'

# packaging/release.py writes the release's version here; the copy in the repository keeps the
# placeholder and then needs -Version, or a -From whose SHA256SUMS names one version.
$DefaultVersion = '@VERSION@'
$Releases = 'https://github.com/bitnet-engine/bitnet/releases/download'
$Marker = '.bitnet-install'

function Write-Step([string]$Message) {
    Write-Host "==> $Message"
}

function Get-ReleaseFile([string]$Name, [string]$Destination) {
    # The release's file $Name into $Destination, from the -From folder or URL.
    if ($FromIsUrl) {
        $url = $From.TrimEnd('/') + '/' + $Name
        Write-Step "downloading $url"
        try {
            Invoke-WebRequest -UseBasicParsing -Uri $url -OutFile $Destination
        } catch {
            throw "install.ps1: cannot download ${url}: $($_.Exception.Message)"
        }
    } else {
        $source = Join-Path $From $Name
        if (-not (Test-Path -LiteralPath $source -PathType Leaf)) {
            throw "install.ps1: $source does not exist (is -From a bitnet release folder?)"
        }
        Copy-Item -LiteralPath $source -Destination $Destination
    }
}

function Read-Sha256Sums([string]$Path) {
    # SHA256SUMS as a table: file name -> lower-case sha256 ("HASH  NAME" or "HASH *NAME" lines).
    $sums = @{}
    foreach ($line in Get-Content -LiteralPath $Path) {
        if ($line -match '^([0-9a-fA-F]{64}) [ *](.+)$') {
            $sums[$Matches[2].Trim()] = $Matches[1].ToLowerInvariant()
        }
    }
    return $sums
}

function Test-Sha256([hashtable]$Sums, [string]$Name, [string]$Path) {
    if (-not $Sums.ContainsKey($Name)) {
        throw "install.ps1: SHA256SUMS of the release does not list $Name"
    }
    $actual = (Get-FileHash -Algorithm SHA256 -LiteralPath $Path).Hash.ToLowerInvariant()
    if ($actual -ne $Sums[$Name]) {
        throw ("install.ps1: ${Name}: sha256 mismatch: SHA256SUMS says $($Sums[$Name]), the file has $actual. " +
               'The file is corrupt or was tampered with; nothing was installed.')
    }
    Write-Step "${Name}: sha256 verified"
}

function Get-InstalledVersion([string]$Exe) {
    if (-not (Test-Path -LiteralPath $Exe -PathType Leaf)) {
        return ''
    }
    try {
        return ((& $Exe --version) | Out-String).Trim()
    } catch {
        return ''
    }
}

# ---- what and from where ----------------------------------------------------------------------
if ($Version -ne '' -and $Version -notmatch '^[0-9][0-9A-Za-z.+~-]*$') {
    throw "install.ps1: -Version ${Version}: expected a version such as 0.1.0 (no leading v)"
}
if ($Version -eq '' -and $DefaultVersion -notmatch '^@.*@$') {
    $Version = $DefaultVersion
}
if ($Version -eq '' -and $From -eq '') {
    throw 'install.ps1: which version? This copy of install.ps1 is not from a release: pass -Version X.Y.Z or -From FOLDER'
}
if ($InstallDir -eq '') {
    if (-not $env:LOCALAPPDATA) {
        throw 'install.ps1: LOCALAPPDATA is not set: pass -InstallDir'
    }
    $InstallDir = Join-Path $env:LOCALAPPDATA 'bitnet'
}
$InstallDir = [IO.Path]::GetFullPath($InstallDir)
if ($From -eq '') {
    $From = "$Releases/v$Version/"
}
$FromIsUrl = $From -match '^https?://'
if (-not $FromIsUrl) {
    if (-not (Test-Path -LiteralPath $From -PathType Container)) {
        throw "install.ps1: -From ${From}: no such folder"
    }
    $From = (Resolve-Path -LiteralPath $From).ProviderPath
}
# The zip holds x86_64 binaries: 64-bit Windows on x64, or on ARM64 through its x64 emulation.
$arch = $env:PROCESSOR_ARCHITECTURE
if ($env:PROCESSOR_ARCHITEW6432) {
    $arch = $env:PROCESSOR_ARCHITEW6432
}
if ($arch -notin @('AMD64', 'ARM64')) {
    throw "install.ps1: bitnet for Windows needs 64-bit Windows (x64, or ARM64 with x64 emulation); this is $arch"
}

$tmp = Join-Path ([IO.Path]::GetTempPath()) ('bitnet-install-' + [guid]::NewGuid().ToString('N'))
New-Item -ItemType Directory -Path $tmp | Out-Null
try {
    $sumsPath = Join-Path $tmp 'SHA256SUMS'
    Get-ReleaseFile 'SHA256SUMS' $sumsPath
    $sums = Read-Sha256Sums $sumsPath
    if ($Version -eq '') {
        $versions = @($sums.Keys | ForEach-Object {
                if ($_ -match '^bitnet-([0-9][0-9A-Za-z.+~]*)-windows-x86_64\.zip$') { $Matches[1] }
            } | Sort-Object -Unique)
        if ($versions.Count -ne 1) {
            throw "install.ps1: SHA256SUMS in $From names $($versions.Count) Windows zips: pass -Version"
        }
        $Version = $versions[0]
        Write-Step "version $Version (from SHA256SUMS)"
    }

    $bin = Join-Path $InstallDir 'bin'
    $exe = Join-Path $bin 'bitnet-cli.exe'
    $markerPath = Join-Path $InstallDir $Marker
    if (-not $Force -and (Test-Path -LiteralPath $markerPath) -and
        (Get-InstalledVersion $exe) -eq "bitnet-cli $Version") {
        Write-Step "bitnet $Version is already installed in $InstallDir; nothing to do (-Force reinstalls)"
        return
    }
    # Replace only a folder this script made (or an empty one): never a folder of someone else's.
    if ((Test-Path -LiteralPath $InstallDir) -and -not (Test-Path -LiteralPath $markerPath) -and
        @(Get-ChildItem -LiteralPath $InstallDir -Force).Count -gt 0) {
        throw "install.ps1: $InstallDir exists and was not made by this script: choose another -InstallDir, or empty it"
    }

    $zipName = "bitnet-$Version-windows-x86_64.zip"
    $zipPath = Join-Path $tmp $zipName
    Get-ReleaseFile $zipName $zipPath
    Test-Sha256 $sums $zipName $zipPath
    $unpacked = Join-Path $tmp 'unpacked'
    Expand-Archive -LiteralPath $zipPath -DestinationPath $unpacked
    $top = Join-Path $unpacked "bitnet-$Version-windows-x86_64"
    if (-not (Test-Path -LiteralPath (Join-Path $top 'bin\bitnet-cli.exe') -PathType Leaf)) {
        throw "install.ps1: $zipName has no bitnet-$Version-windows-x86_64\bin\bitnet-cli.exe"
    }

    if ($DryRun) {
        Write-Step "dry run: would install $zipName into $InstallDir"
        if (-not $NoModifyPath) {
            Write-Step "dry run: would add $bin to the user PATH (if it is not there)"
        }
        Write-Step 'dry run: nothing was changed'
        return
    }

    Write-Step "installing into $InstallDir"
    if (Test-Path -LiteralPath $InstallDir) {
        Remove-Item -LiteralPath $InstallDir -Recurse -Force
    }
    New-Item -ItemType Directory -Path $InstallDir | Out-Null
    Copy-Item -Path (Join-Path $top '*') -Destination $InstallDir -Recurse -Force
    Set-Content -LiteralPath $markerPath -Value "bitnet $Version from $From" -Encoding ASCII

    $printed = Get-InstalledVersion $exe
    if ($printed -ne "bitnet-cli $Version") {
        throw "install.ps1: $exe --version printed '$printed', expected 'bitnet-cli $Version'"
    }

    if (-not $NoModifyPath) {
        $userPath = [Environment]::GetEnvironmentVariable('Path', 'User')
        if ($null -eq $userPath) {
            $userPath = ''
        }
        $entries = @($userPath -split ';' | Where-Object { $_ -ne '' })
        if (-not ($entries | Where-Object { $_.TrimEnd('\') -ieq $bin.TrimEnd('\') })) {
            [Environment]::SetEnvironmentVariable('Path', (@($entries) + $bin) -join ';', 'User')
            Write-Step "added $bin to the user PATH (new terminals see it)"
        }
        if (-not (($env:Path -split ';') | Where-Object { $_.TrimEnd('\') -ieq $bin.TrimEnd('\') })) {
            $env:Path = "$env:Path;$bin"
        }
    }
    Write-Host "bitnet $Version installed in $InstallDir. Try: bitnet-cli -p `"And God said`" -n 32"
} finally {
    Remove-Item -LiteralPath $tmp -Recurse -Force -ErrorAction SilentlyContinue
}
