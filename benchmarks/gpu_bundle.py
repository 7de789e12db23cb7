"""What one call of the lent GPU machine carries: wheels its image lacks and a Spider slice.

    python benchmarks/gpu_bundle.py build    # download into .whl/, slice Spider into .gpu_data/, verify, size
    python benchmarks/gpu_bundle.py verify   # resolve the wheels in .whl/ against the image (no network)
    python benchmarks/gpu_bundle.py check    # the lists alone (no network, no .whl/): what CI runs

The machine (docs/gpu.md) has Python 3.12, torch, accelerate and peft but no package index, and a
call carries at most 64 MiB: the repository's files that travel plus the ``carry`` paths.

* ``benchmarks/gpu/wheels.txt`` names every wheel (``name==version``; ``# optional`` marks one
  carried only if the whole stays under the limit); ``benchmarks/gpu/image.txt`` what the image holds.
* ``build``: ``pip download --only-binary=:all: --python-version 3.12 --platform manylinux... --no-deps``
  of exactly that list into ``.whl/`` (other files there are removed: two versions of one package stop
  ``pip install``), the Spider slice (``--spider``, default ``../shared/data/spider``) into
  ``.gpu_data/spider`` (and ``--demo-model`` into ``.gpu_data/demo_model``), then ``verify``, then the
  sizes; an optional wheel is dropped when it would not fit; exit 1 when the total is over the limit.
* ``verify``: every ``Requires-Dist`` of every wheel (markers evaluated for CPython 3.12 on Linux
  x86_64, extras skipped) must be met by another wheel of the bundle or by the image; a requirement
  on an image package whose version is not recorded is listed as unchecked (``gpu_check.sh`` checks
  those on the machine). Exit 1 on anything unmet.
* ``check``: the lists parse, have one version per package, and the pins meet pyproject's floors.
"""

from __future__ import annotations

import argparse
import email.parser
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LISTS = REPO / "benchmarks" / "gpu"
LIMIT_MIB = 64.0
#: kept free under the limit for files added to the repository after the bundle was built
MARGIN_MIB = 1.0
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
#: the lent machine, for evaluating markers
TARGET_ENV = {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.3",
              "implementation_name": "cpython", "platform_python_implementation": "CPython",
              "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"}
#: Spider databases of the slice: the smaller ones of each cross-database part of dev
#: (sqlcoach.data.spider.SPIDER_DEV_PARTS), so that dev_train / dev_eval both load from it
SLICE_DBS = {"dev_train": ("concert_singer", "poker_player", "singer", "tvshow", "employee_hire_evaluation",
                           "battle_death", "cre_Doc_Template_Mgt"),
             "dev_eval": ("pets_1", "orchestra", "network_1", "course_teach", "museum_visit", "voter_1")}


class BundleError(Exception):
    """The bundle cannot be made or does not hold together; the message says why."""


def read_list(path: Path) -> list[tuple[str, str | None, bool]]:
    """``[(name, version or None, optional)]`` of a list file; blank lines and ``#`` comments skipped."""
    out = []
    seen: set[str] = set()
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        optional = "# optional" in raw
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        name = canonicalize_name(name.strip())
        if not name or (sep and not version.strip()):
            raise BundleError(f"{path.name}:{lineno}: expected 'name' or 'name==version', got {raw!r}")
        if name in seen:
            raise BundleError(f"{path.name}:{lineno}: {name} listed twice (two versions stop pip install)")
        seen.add(name)
        out.append((name, version.strip() or None, optional))
    return out


def wheel_list() -> list[tuple[str, str, bool]]:
    rows = read_list(LISTS / "wheels.txt")
    for name, version, _ in rows:
        if version is None:
            raise BundleError(f"wheels.txt: {name} has no version (the bundle must be reproducible)")
    return [(n, v or "", o) for n, v, o in rows]


def image_list() -> dict[str, str | None]:
    return {name: version for name, version, _ in read_list(LISTS / "image.txt")}


def check_lists() -> list[str]:
    """Offline checks of the two lists against pyproject's pins; returns the lines to print."""
    import tomllib

    wheels = {n: v for n, v, _ in wheel_list()}
    image = image_list()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    lines = []
    for spec in project["dependencies"] + extras["train"] + extras["serve"] + extras["quant"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        if name in wheels:
            if not req.specifier.contains(Version(wheels[name]), prereleases=True):
                raise BundleError(f"wheels.txt pins {name}=={wheels[name]}, outside pyproject's {spec!r}")
            lines.append(f"pin ok: {name}=={wheels[name]} meets {spec}")
        elif name in image:
            have = image[name]
            if have is not None and not req.specifier.contains(Version(have), prereleases=True):
                raise BundleError(f"the image holds {name} {have}, outside pyproject's {spec!r}, and wheels.txt "
                                  f"does not carry it")
            lines.append(f"image: {name} {have or '(version unread)'} for {spec}")
        else:
            lines.append(f"not carried: {spec} (the parts that import it SKIP)")
    return lines


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(zf.read(name).decode("utf-8"))


def verify(wheel_dir: Path, *, skip: set[str] = frozenset()) -> list[str]:
    """Resolve every wheel's requirements against the bundle + the image (see module docstring).
    Returns the report lines; raises BundleError when a requirement is unmet or a wheel is missing."""
    listed = wheel_list()
    image = image_list()
    files = {canonicalize_name(parse_wheel_filename(p.name)[0]): p for p in wheel_dir.glob("*.whl")}
    have: dict[str, Version] = {}
    problems, lines = [], []
    for name, version, optional in listed:
        if name in skip:
            continue
        path = files.get(name)
        if path is None:
            problems.append(f"{name}=={version}: no wheel in {wheel_dir}")
            continue
        got = parse_wheel_filename(path.name)[1]
        if got != Version(version):
            problems.append(f"{name}: wheel is {got}, wheels.txt says {version}")
        have[name] = got
    extra = sorted(set(files) - set(have))
    if extra:
        problems.append(f"wheels not in wheels.txt (remove them): {', '.join(extra)}")
    unchecked: dict[str, set[str]] = {}
    for name in have:
        for spec in _metadata(files[name]).get_all("Requires-Dist") or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({**TARGET_ENV, "extra": ""}):
                continue
            dep = canonicalize_name(req.name)
            if dep in have:
                if not req.specifier.contains(have[dep], prereleases=True):
                    problems.append(f"{name} needs {spec}; the bundle carries {dep} {have[dep]}")
            elif dep in image:
                ver = image[dep]
                if ver is None:
                    if str(req.specifier):
                        unchecked.setdefault(dep, set()).add(f"{req.specifier} ({name})")
                elif not req.specifier.contains(Version(ver), prereleases=True):
                    problems.append(f"{name} needs {spec}; the image holds {dep} {ver} and the bundle does not carry it")
            else:
                problems.append(f"{name} needs {spec}: neither carried nor in the image")
    lines.append(f"verify: {len(have)} wheels resolve against the bundle + the image ({len(image)} packages)")
    for dep, specs in sorted(unchecked.items()):
        lines.append(f"  unchecked here (image version unread): {dep} {'; '.join(sorted(specs))}")
    if problems:
        raise BundleError("dependencies do not resolve:\n  " + "\n  ".join(problems))
    return lines


def download(wheel_dir: Path, names: list[tuple[str, str, bool]]) -> None:
    wheel_dir.mkdir(exist_ok=True)
    wanted = {n for n, _, _ in names}
    for p in wheel_dir.glob("*.whl"):  # a stale version beside the new one would stop pip install
        if canonicalize_name(parse_wheel_filename(p.name)[0]) not in wanted:
            p.unlink()
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", "-d", str(wheel_dir)]
    for plat in PLATFORMS:
        cmd += ["--platform", plat]
    cmd += [f"{n}=={v}" for n, v, _ in names]
    if subprocess.run(cmd).returncode != 0:
        raise BundleError("pip download failed (see pip's message above)")


def spider_slice(src: Path, dst: Path) -> int:
    """Copy the slice's databases, its dev.json questions (question, query, db_id) and tables.json
    entries from ``src`` into ``dst``; returns the number of questions."""
    dbs = [d for part in SLICE_DBS.values() for d in part]
    dev = json.loads((src / "dev.json").read_text())
    keep = [{k: r[k] for k in ("db_id", "query", "question")} for r in dev if r["db_id"] in dbs]
    tables = [t for t in json.loads((src / "tables.json").read_text()) if t["db_id"] in dbs]
    if {t["db_id"] for t in tables} != set(dbs):
        raise BundleError(f"{src}/tables.json lacks {sorted(set(dbs) - {t['db_id'] for t in tables})}")
    if dst.exists():
        shutil.rmtree(dst)
    (dst / "database").mkdir(parents=True)
    for db in dbs:
        f = src / "database" / db / f"{db}.sqlite"
        if not f.is_file():
            raise BundleError(f"missing {f}")
        (dst / "database" / db).mkdir()
        # VACUUM INTO: a compact copy with no journal or free pages (smaller than a byte copy)
        con = sqlite3.connect(f"file:{f}?mode=ro", uri=True)
        con.execute("VACUUM INTO ?", (str(dst / "database" / db / f"{db}.sqlite"),))
        con.close()
    (dst / "dev.json").write_text(json.dumps(keep))
    (dst / "tables.json").write_text(json.dumps(tables))
    return len(keep)


def mib(n: float) -> float:
    return n / 2**20


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def travelling_repo_bytes() -> int:
    """Bytes of the repository files that travel with every call: tracked plus untracked files
    that git does not ignore (a symbolic link travels as a link, counted as its own size)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, check=True).stdout
    total = 0
    for rel in filter(None, out.decode().split("\0")):
        p = REPO / rel
        if p.is_symlink() or p.is_file():
            total += p.lstat().st_size
    return total


def build(args: argparse.Namespace) -> int:
    wheel_dir, data_dir = REPO / ".whl", REPO / ".gpu_data"
    names = wheel_list()
    download(wheel_dir, names)
    n = spider_slice(Path(args.spider), data_dir / "spider")
    demo = data_dir / "demo_model"
    if demo.exists():
        shutil.rmtree(demo)
    if args.demo_model:
        src = Path(args.demo_model)
        if not (src / "config.json").is_file():
            raise BundleError(f"--demo-model {src}: no config.json there (give a trained model folder, e.g. runs/demo/sft/final)")
        shutil.copytree(src, demo, ignore=shutil.ignore_patterns("checkpoint-*", "optimizer.pt", "*.log"))
        print(f"demo model: {src} -> {demo} ({mib(tree_bytes(demo)):.2f} MiB)")
    print(f"spider slice: {n} questions, {sum(len(v) for v in SLICE_DBS.values())} databases -> {data_dir / 'spider'}")
    repo = mib(travelling_repo_bytes())
    data = mib(tree_bytes(data_dir))
    sizes = {p.name: mib(p.stat().st_size) for p in sorted(wheel_dir.glob("*.whl"))}
    optional = {n for n, _, o in names if o}
    files_of = {canonicalize_name(parse_wheel_filename(f)[0]): f for f in sizes}
    required = sum(s for f, s in sizes.items() if canonicalize_name(parse_wheel_filename(f)[0]) not in optional)
    left = LIMIT_MIB - MARGIN_MIB - repo - data - required
    dropped = set()
    for name in sorted(optional):
        size = sizes.get(files_of.get(name, ""), 0.0)
        if size > left:
            dropped.add(name)
            (wheel_dir / files_of[name]).unlink()
            print(f"optional {name} NOT carried: {size:.1f} MiB, only {left:.1f} MiB left under "
                  f"{LIMIT_MIB:.0f} MiB - {MARGIN_MIB:.0f} MiB margin (its part prints SKIP)")
            del sizes[files_of[name]]
        else:
            left -= size
    for line in verify(wheel_dir, skip=dropped):
        print(line)
    for f, s in sizes.items():
        print(f"  {s:6.2f} MiB  .whl/{f}")
    wheels = sum(sizes.values())
    total = repo + data + wheels
    print(f"sizes: wheels {wheels:.2f} MiB ({len(sizes)} files), spider slice {data:.2f} MiB, "
          f"repository files that travel {repo:.2f} MiB, total {total:.2f} MiB of {LIMIT_MIB:.0f} MiB")
    if total > LIMIT_MIB:
        print(f"gpu_bundle: FAIL: {total:.2f} MiB is over the {LIMIT_MIB:.0f} MiB a call may carry")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("build", "verify", "check"), nargs="?", default="build")
    ap.add_argument("--spider", default=str(REPO.parent / "shared" / "data" / "spider"),
                    help="Spider folder to slice (dev.json, tables.json, database/)")
    ap.add_argument("--demo-model", default=None,
                    help="a trained model folder (e.g. runs/demo/sft/final) for gpu_check's correctness part; "
                         "copied into .gpu_data/demo_model and counted before the optional wheels")
    args = ap.parse_args(argv)
    try:
        if args.command == "check":
            for line in check_lists():
                print(line)
            print(f"check: {len(wheel_list())} wheels listed, {len(image_list())} image packages")
            return 0
        if args.command == "verify":
            present = {canonicalize_name(parse_wheel_filename(p.name)[0]) for p in (REPO / ".whl").glob("*.whl")}
            skip = {n for n, _, o in wheel_list() if o and n not in present}
            for line in verify(REPO / ".whl", skip=skip):
                print(line)
            return 0
        return build(args)
    except BundleError as exc:
        print(f"gpu_bundle: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
