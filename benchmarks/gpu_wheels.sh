#!/usr/bin/env bash
# Download, here, the wheels that benchmarks/run_gpu.sh installs on a lent GPU machine (which reaches
# no package registry): depthlab's dependencies that the machine's image lacks, and those it has at
# other versions, at the versions of this checkout's virtual environment. See docs/gpu.md.
#
#   bash benchmarks/gpu_wheels.sh                 # in the checkout whose tree the device tool sends
#   VENV_PYTHON=/path/to/.venv/bin/python bash benchmarks/gpu_wheels.sh
#
# Writes .whl/need/ (absent on the device: albumentations and its chain, jsonargparse[signatures]),
# .whl/match/ (lightning, torchmetrics, timm at this venv's versions) and .whl/hf/ (transformers and
# its chain: huggingface_hub 2.x, tokenizers, ...), each with every dependency the device must not
# take from its own image, found by walking the wheels' Requires-Dist (markers evaluated for the
# device: CPython 3.12, Linux x86_64). What the device image provides and must keep (torch, its
# CUDA libraries, numpy, scipy, OpenCV, h5py, ...: see DEVICE_KEEP) is never carried; the script
# lists the version ranges the carried wheels need of those. Then it checks that every wheel is
# installable on CPython 3.12 manylinux x86_64 (pip's own dry run) and that .whl plus the working
# tree stay under the 64 MiB that travels to the device, and adds /.whl/ to .git/info/exclude.
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"
PY=${VENV_PYTHON:-.venv/bin/python}
[ -x "$PY" ] || { echo "gpu_wheels.sh: no python at $PY (set VENV_PYTHON to the venv depthlab runs in)" >&2; exit 2; }
LIMIT_MIB=${LIMIT_MIB:-64}

exclude="$(git rev-parse --git-common-dir)/info/exclude"
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"

"$PY" - "$LIMIT_MIB" <<'PYTHON'
import email.parser
import importlib.metadata as md
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LIMIT_MIB = float(sys.argv[1])
WHL = Path(".whl")
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
TARGET = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:"] + \
    [arg for p in PLATFORMS for arg in ("--platform", p)]
# Each group's roots; a dependency joins the group of the first root that pulls it in.
GROUPS = {
    "need": ["albumentations", "jsonargparse", "docstring-parser", "typeshed-client"],  # jsonargparse[signatures]
    "match": ["lightning", "torchmetrics", "timm"],
    "hf": ["transformers"],
}
# On the device image and kept as they are: CUDA builds (torch and its libraries), compiled packages
# others are built against (numpy), large ones (opencv-python-headless alone is 61 MiB), and two that
# the image has at versions the carried wheels accept (tokenizers 0.23.2, per the device notes, for
# transformers' >=0.23.1,<0.24; hf-xet, which only downloads, for huggingface_hub's >=1.6,<2).
DEVICE_KEEP = {canonicalize_name(n) for n in """
    torch torchvision torchaudio triton numpy scipy opencv-python-headless opencv-python h5py pillow pyyaml
    tokenizers hf-xet
    tensorboard tensorboard-data-server protobuf grpcio markdown werkzeug absl-py sympy mpmath networkx jinja2
    markupsafe setuptools aiohttp aiosignal aiohappyeyeballs frozenlist multidict yarl propcache attrs psutil
    """.split()}
DEVICE_PREFIXES = ("nvidia-", "cuda-")
# The device's interpreter, for the requirement markers.
ENV = {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
       "platform_python_implementation": "CPython", "os_name": "posix"}

installed = {canonicalize_name(d.metadata["Name"]): d.version for d in md.distributions()}


def kept(name: str) -> bool:
    return name in DEVICE_KEEP or name.startswith(DEVICE_PREFIXES)


def wheel_of(group: str, name: str, version: str) -> Path:
    folder = WHL / group
    folder.mkdir(parents=True, exist_ok=True)
    for old in WHL.glob("*/*.whl"):  # one version of each package, in one group (two stop the install)
        stem = old.name.split("-")
        if canonicalize_name(stem[0]) == name and (old.parent.name != group or stem[1] != version):
            old.unlink()
    found = [w for w in folder.glob("*.whl") if canonicalize_name(w.name.split("-")[0]) == name]
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *TARGET, "-d", str(folder),
                        f"{name}=={version}"], check=True)
        found = [w for w in folder.glob("*.whl") if canonicalize_name(w.name.split("-")[0]) == name]
    return found[0]


def requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        message = email.parser.Parser().parsestr(z.read(meta).decode())
    reqs = [Requirement(r) for r in message.get_all("Requires-Dist") or []]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({**ENV, "extra": ""})]


carried: dict[str, tuple[str, str, Path]] = {}  # name -> (group, version, wheel)
relied: dict[str, set[str]] = {}  # device packages -> the ranges asked of them
problems: list[str] = []
for group, roots in GROUPS.items():
    queue = [canonicalize_name(r) for r in roots]
    while queue:
        name = queue.pop(0)
        if name in carried:
            continue
        if name not in installed:
            problems.append(f"{name}: not installed in {sys.prefix}, so no version to carry")
            continue
        wheel = wheel_of(group, name, installed[name])
        carried[name] = (group, installed[name], wheel)
        for req in requirements(wheel):
            dep = canonicalize_name(req.name)
            if kept(dep):
                relied.setdefault(dep, set()).add(f"{req.specifier or 'any'} (for {name})")
            elif dep in installed and req.specifier and not req.specifier.contains(installed[dep], prereleases=True):
                problems.append(f"{name} needs {req}, this venv has {dep} {installed[dep]}")
            elif dep not in carried:
                queue.append(dep)

wanted = {w for _, _, w in carried.values()}
for stray in WHL.glob("*/*.whl"):
    if stray not in wanted:
        stray.unlink()
for group in GROUPS:  # pip's own check: installable on the device's CPython 3.12, manylinux x86_64
    wheels = sorted(str(w) for w in (WHL / group).glob("*.whl"))
    if wheels:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--no-index", "--no-deps",
                        "--target", "/tmp/gpu-wheels-dry-run", *TARGET, *wheels], check=True)

mib = lambda n: n / 2**20  # noqa: E731
print(f"{'group':6} {'package':28} {'version':14} {'MiB':>6}")
for name, (group, version, wheel) in sorted(carried.items(), key=lambda kv: (list(GROUPS).index(kv[1][0]), kv[0])):
    print(f"{group:6} {name:28} {version:14} {mib(wheel.stat().st_size):6.2f}")
total = sum(w.stat().st_size for w in WHL.glob("*/*.whl"))
tree = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], capture_output=True,
                      check=True).stdout.split(b"\0")
tree_bytes = sum(Path(p.decode()).stat().st_size for p in tree if p and Path(p.decode()).is_file())
print(f"\n.whl: {len(carried)} wheels, {mib(total):.1f} MiB; working tree that travels: {mib(tree_bytes):.1f} MiB; "
      f"together {mib(total + tree_bytes):.1f} of {LIMIT_MIB:g} MiB")
print("\nkept from the device image (the carried wheels ask of them):")
for name in sorted(relied):
    print(f"  {name}: {'; '.join(sorted(relied[name]))}")
for p in problems:
    print(f"PROBLEM: {p}", file=sys.stderr)
if total + tree_bytes > LIMIT_MIB * 2**20:
    sys.exit(f"gpu_wheels.sh: {mib(total + tree_bytes):.1f} MiB would travel, over the {LIMIT_MIB:g} MiB limit")
sys.exit(1 if problems else 0)
PYTHON
