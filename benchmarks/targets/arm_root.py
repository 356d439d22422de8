"""The arm64 emulation root that `benchmark --target arm --arm-mode emulated` runs in, built
by `make arm-root` (`python -m benchmarks.targets.emulated build`).

It holds a static qemu-aarch64 from Debian 13 (Debian 12's qemu 7.2 crashes on
`import onnxruntime`: it shows ORT the host's x86 /proc/cpuinfo), a Debian 12 arm64 minbase
with python3, and the aarch64 onnxruntime wheel of the version installed here in its own site
folder. A manifest written last marks a finished build, so a build that stopped halfway is
never taken for a root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from compressor import atomic
from compressor.errors import UserError
from compressor.runfolder import cache_root

# Cores that take different kernel paths: A55 and A76 (phones, Raspberry Pi 5) have int8 dot
# product (SDOT), A72 (Raspberry Pi 4) has not, `max` adds i8mm and SVE, whose int8 path rounds
# differently (logits 0.07 apart on the demo's int8 student, against 0.006 for the others).
CPUS = ("cortex-a55", "cortex-a72", "cortex-a76", "max")
ROOT_MANIFEST = "root.json"
TRIXIE_SOURCE = (
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    "http://deb.debian.org/debian trixie main\n"
)
BOOTSTRAP_SUITE = "bookworm"


@dataclass(frozen=True)
class ArmRoot:
    """The folder `build_arm_root` fills, and how to run its python under qemu."""

    folder: Path

    @property
    def qemu(self) -> Path:
        return self.folder / "bin" / "qemu-aarch64"

    @property
    def sysroot(self) -> Path:
        return self.folder / "sysroot"

    @property
    def site(self) -> Path:
        return self.folder / "site"

    @property
    def manifest(self) -> dict[str, str]:
        return json.loads((self.folder / ROOT_MANIFEST).read_text(encoding="utf-8"))

    @property
    def python(self) -> Path:
        return self.sysroot / "usr" / "bin" / f"python{self.manifest['python']}"

    def command(self, cpu: str) -> list[str]:
        """-L makes qemu look up the loader and libraries in the root first, host paths
        (the script, the model files) still resolve because missing ones fall through."""
        return [str(self.qemu), "-cpu", cpu, "-L", str(self.sysroot), str(self.python)]

    def env(self) -> dict[str, str]:
        """The host's PYTHON* variables point at x86 packages, so none of them go through."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        return {**env, "PYTHONPATH": str(self.site), "PYTHONNOUSERSITE": "1"}

    def cpus(self) -> list[str]:
        """The cores of CPUS this qemu knows (older ones lack some). `-cpu help` exits 1
        after listing, so its status says nothing."""
        listing = subprocess.run(
            [str(self.qemu), "-cpu", "help"], capture_output=True, text=True, check=False
        ).stdout
        known = {line.strip() for line in listing.splitlines() if line.startswith("  ")}
        return [cpu for cpu in CPUS if cpu in known]


def host_onnxruntime() -> str:
    import onnxruntime

    return onnxruntime.__version__


def find_root(arm_root: str | None) -> ArmRoot:
    """The built root, checked before any file is touched: a root without the manifest is a
    build that stopped halfway, and one for another ORT version would test the wrong build."""
    folder = Path(arm_root).expanduser() if arm_root else cache_root() / "arm64-root"
    root = ArmRoot(folder)
    if not (folder / ROOT_MANIFEST).is_file():
        raise UserError(
            f"no arm64 emulation root at {folder} — run `make arm-root` first "
            f"(or `python -m benchmarks.targets.emulated build {folder}`)"
        )
    built, here = root.manifest["onnxruntime"], host_onnxruntime()
    if built != here:
        raise UserError(
            f"the arm64 root at {folder} has onnxruntime {built}, this environment {here} — "
            "run `make arm-root` again"
        )
    return root


def build_arm_root(folder: Path) -> ArmRoot:
    """Build (or bring up to date) the emulation root; each step is skipped when done, and the
    manifest stays only once the root imports onnxruntime, so that a build that stopped or
    broke is never taken for a root."""
    missing = [tool for tool in ("apt-get", "dpkg", "debootstrap") if not shutil.which(tool)]
    if missing:
        raise UserError(
            f"building the arm64 root needs {', '.join(missing)} — on Debian or Ubuntu: "
            "`apt-get install debootstrap`"
        )
    if os.geteuid() != 0:
        raise UserError("debootstrap needs root — run `make arm-root` as root")
    folder = folder.expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ROOT_MANIFEST).unlink(missing_ok=True)
    root = ArmRoot(folder)
    qemu_version = _fetch_qemu(folder)
    python = _bootstrap(root.sysroot)
    ort_version = host_onnxruntime()
    _install_onnxruntime(root.site, python, ort_version)
    manifest = {
        "qemu": qemu_version,
        "python": python,
        "onnxruntime": ort_version,
        "numpy": _dist_version(root.site, "numpy"),
        "suite": BOOTSTRAP_SUITE,
    }
    atomic.write_json(folder / ROOT_MANIFEST, manifest)
    check = subprocess.run(
        [*root.command("cortex-a76"), "-c", "import onnxruntime; print(onnxruntime.__file__)"],
        env=root.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        (folder / ROOT_MANIFEST).unlink()
        raise RuntimeError(f"the new root cannot import onnxruntime:\n{check.stderr[-2000:]}")
    return root


def _fetch_qemu(folder: Path) -> str:
    """qemu-user from Debian 13 (static binaries, so they run on this release), fetched with
    apt through a private source list and state: the system's apt setup stays untouched. Only
    qemu-aarch64 is kept, not the package's 450 MB of other targets."""
    qemu = ArmRoot(folder).qemu
    if not qemu.is_file():
        state = folder / "apt"
        for sub in ("lists/partial", "cache/archives/partial"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        atomic.write_text(state / "sources.list", TRIXIE_SOURCE)
        options = [
            *("-o", f"Dir::Etc::sourcelist={state / 'sources.list'}"),
            *("-o", "Dir::Etc::sourceparts=-"),
            *("-o", f"Dir::State::Lists={state / 'lists'}"),
            *("-o", f"Dir::Cache={state / 'cache'}"),
            *("-o", "APT::Sandbox::User=root"),
        ]
        subprocess.run(["apt-get", *options, "-qq", "update"], check=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            subprocess.run(
                ["apt-get", *options, "-qq", "download", "qemu-user"], cwd=tmp, check=True
            )
            deb = next(Path(tmp).glob("qemu-user_*.deb"))
            subprocess.run(["dpkg", "-x", str(deb), str(Path(tmp) / "x")], check=True)
            qemu.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(Path(tmp) / "x" / "usr" / "bin" / "qemu-aarch64", qemu)
    version = subprocess.run(
        [str(qemu), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return version.splitlines()[0].removeprefix("qemu-aarch64 version ")


def _bootstrap(sysroot: Path) -> str:
    """Debian arm64 minbase with python3. `--foreign` only unpacks the base set without
    running any maintainer script (which would need arm64 execution); `dpkg -x` of the
    downloaded packages adds the rest, python included. Returns the python version."""
    if not _root_pythons(sysroot):
        shutil.rmtree(sysroot, ignore_errors=True)
        subprocess.run(
            [
                "debootstrap",
                "--foreign",
                "--arch=arm64",
                "--variant=minbase",
                "--include=python3",
                BOOTSTRAP_SUITE,
                str(sysroot),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for deb in sorted((sysroot / "var" / "cache" / "apt" / "archives").glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(sysroot)], check=True)
    versions = _root_pythons(sysroot)
    if not versions:
        raise RuntimeError(f"debootstrap left no python3.X in {sysroot}/usr/bin")
    return versions[-1]


def _root_pythons(sysroot: Path) -> list[str]:
    found = []
    for path in (sysroot / "usr" / "bin").glob("python3.*"):
        match = re.fullmatch(r"python(3\.\d+)", path.name)
        if match:
            found.append(match.group(1))
    return sorted(found, key=lambda v: int(v.split(".")[1]))


def _install_onnxruntime(site: Path, python: str, version: str) -> None:
    """The aarch64 wheels (onnxruntime and its numpy) for the root's python, not Debian's
    numpy: that one needs BLAS alternatives that only maintainer scripts set up."""
    if _dist_version(site, "onnxruntime") == version:
        return
    shutil.rmtree(site, ignore_errors=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            str(site),
            "--platform",
            "manylinux_2_28_aarch64",
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            python,
            f"onnxruntime=={version}",
        ],
        check=True,
    )


def _dist_version(site: Path, name: str) -> str | None:
    for info in site.glob(f"{name}-*.dist-info"):
        return info.name.removeprefix(f"{name}-").removesuffix(".dist-info")
    return None
