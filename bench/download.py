"""Public archives, fetched once: HTTPS into a cache folder, checksum-verified, written atomically
(a partial or corrupt download never sits under the final name), extracted safely.

The cache folder is `dataset.cache_dir`, whose default is `$RECBENCH_DATA` or
`~/.cache/recbench`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from bench.errors import BenchError
from bench.records import atomic_write

ENV_VAR = "RECBENCH_DATA"
DEFAULT_CACHE = "~/.cache/recbench"
_CHUNK = 1 << 16


def cache_dir(configured: str | os.PathLike | None = None) -> Path:
    """The data cache folder: the configured one, else $RECBENCH_DATA, else ~/.cache/recbench."""
    chosen = configured or os.environ.get(ENV_VAR) or DEFAULT_CACHE
    return Path(chosen).expanduser()


def fetch(url: str, dest: Path, md5: str | None = None, sha256: str | None = None,
          progress: bool = True, timeout: float = 60.0) -> Path:
    """Download `url` to `dest` unless a file with the right checksum is already there.

    The body streams into a temporary file beside `dest`; only when the byte count matches the
    announced length and the checksum matches is it renamed onto `dest`.
    """
    dest = Path(dest)
    if dest.is_file():
        if verify(dest, md5, sha256) is None:
            return dest
        dest.unlink()  # a stale or corrupt cached file: fetch it again

    def download_verified(tmp: Path) -> None:
        with open(tmp, "wb") as out:
            _stream(url, out, dest.name, progress, timeout)
        problem = verify(tmp, md5, sha256)
        if problem:  # raising here leaves nothing under dest: atomic_write drops the temp file
            raise BenchError(f"{url}: {problem}; the download is corrupt or not the expected "
                             f"file (nothing was saved as {dest})")

    atomic_write(dest, download_verified)
    return dest


def _stream(url: str, out, label: str, progress: bool, timeout: float) -> None:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    request = urllib.request.Request(url, headers={"User-Agent": "recbench"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BenchError(f"{url}: download failed ({reason}); check the network, or point "
                         "dataset.root at an extracted local copy") from None
    with response:
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        received = 0
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeRemainingColumn())
        with Progress(*columns, disable=not progress, transient=True) as bar:
            task = bar.add_task(f"downloading {label}", total=total)
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, ValueError) as exc:  # includes http.client.IncompleteRead
                    raise BenchError(f"{url}: transfer broke off after {received:,} bytes "
                                     f"({type(exc).__name__}); nothing was saved") from None
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(task, advance=len(chunk))
    if total is not None and received != total:
        raise BenchError(f"{url}: transfer truncated, received {received:,} of {total:,} bytes; "
                         "nothing was saved")


def verify(path: Path, md5: str | None = None, sha256: str | None = None) -> str | None:
    """None when the file matches every checksum given, else what did not match."""
    digests = {name: hashlib.new(name) for name, want in (("md5", md5), ("sha256", sha256))
               if want}
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            for d in digests.values():
                d.update(chunk)
    for name, want in (("md5", md5), ("sha256", sha256)):
        if want and digests[name].hexdigest() != want.lower():
            return f"{name} is {digests[name].hexdigest()}, expected {want.lower()}"
    return None


def extract_zip(archive: Path, target: Path) -> Path:
    """Extract every entry under `target`, refusing the whole archive if any entry would land
    outside it (absolute paths, `..`, drive letters) or is a link. Extraction goes to a temporary
    folder first, renamed into place, so `target` is either complete or absent."""
    archive, target = Path(archive), Path(target)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BenchError(f"{archive}: not a readable zip archive ({exc})") from None
    with zf:
        for info in zf.infolist():
            name = info.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if (name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0])):
                raise BenchError(f"{archive}: entry {name!r} would be written outside "
                                 f"{target}; refusing to extract this archive")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise BenchError(f"{archive}: entry {name!r} is a symbolic link; refusing "
                                 "to extract this archive")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            try:
                zf.extractall(staging)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise BenchError(f"{archive}: extraction failed ({exc})") from None
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return target


def ensure_archive(name: str, url: str, folder: str, cache: str | os.PathLike | None = None,
                   md5: str | None = None, sha256: str | None = None,
                   marker: str | None = None, progress: bool = True) -> Path:
    """The extracted folder of a public archive in the cache, downloading it first if needed.
    Returns `<cache>/<folder>` (the archive's top-level folder)."""
    root = cache_dir(cache)
    folder_path = root / folder
    if marker is None or (folder_path / marker).is_file():
        if folder_path.is_dir():
            return folder_path
    zip_path = fetch(url, root / f"{name}.zip", md5=md5, sha256=sha256, progress=progress)
    # A private staging folder per process: parallel jobs may extract the same archive at once.
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}.") as staging:
        inner = extract_zip(zip_path, Path(staging) / "x") / folder
        if not inner.is_dir():
            raise BenchError(f"{zip_path}: archive lacks the folder {folder!r}")
        complete = (folder_path / marker).is_file() if marker else folder_path.is_dir()
        if not complete:
            if folder_path.exists():
                shutil.rmtree(folder_path)  # a partial copy left by an older interruption
            try:
                os.replace(inner, folder_path)
            except OSError:
                pass  # another process placed the same files first
    return folder_path


class ArchiveDataset:
    """A dataset plugin read from an official archive: `root` points at an extracted copy;
    without it the archive is downloaded once into the data cache (checksum-verified).
    Subclasses set `archive` (name and top-level folder), `files`, `URL`, `MD5`, `SHA256`."""

    archive: str
    files: tuple[str, ...]
    URL: str
    MD5: str | None = None
    SHA256: str | None = None

    def __init__(self, root: str | None = None, cache_dir: str | None = None,
                 progress: bool = True, zip_prefix: int = 2, url: str | None = None,
                 md5: str | None = None, sha256: str | None = None):
        self.root, self.cache_dir, self.progress = root, cache_dir, progress
        self.zip_prefix = zip_prefix
        self.url, self.md5 = url or self.URL, md5 or self.MD5
        # An explicit md5 names another archive (a test fixture, a repack): drop our SHA-256.
        self.sha256 = sha256 if md5 else (sha256 or self.SHA256)

    def location(self) -> Path:
        """The folder holding the raw files: `root`, or the cache (downloading once)."""
        if self.root:
            return Path(self.root).expanduser()
        return ensure_archive(self.archive, self.url, self.archive, self.cache_dir,
                              md5=self.md5, sha256=self.sha256, marker=self.files[0],
                              progress=self.progress)

    def source_files(self) -> list[Path]:
        return [self.location() / name for name in self.files]
