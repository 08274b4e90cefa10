"""Content-addressed blob storage for artifacts and datasets: a local folder, or any fsspec URL (`s3://...`).

Every blob is named by the sha256 of its bytes and kept at `<root>/<sha256[:2]>/<sha256>`: the key is built
from a validated digest only, never from a name a user gave, so nothing can be written or read outside the
root. Writes are idempotent (the same bytes land at the same key); every read re-hashes the bytes and
refuses content that no longer matches its key.

The local folder (the default, `<home>/artifacts`) keeps the layout and protections it always had: a path
that resolves outside the root (a planted symbolic link) is refused, and files are written to a temporary
name and renamed into place. Any other location goes through fsspec (`s3://bucket/prefix` with s3fs,
`file://`, `memory://`, ...); fsspec and s3fs are imported only when such a URL is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from tracking._errors import IntegrityError, StoreError
from tracking._settings import setting

_SHA256 = re.compile(r"[0-9a-f]{64}")
_PREFIX = re.compile(r"[0-9a-f]{2}")


@dataclass(frozen=True)
class BlobEntry:
    """One file found under the root: where it is, its sha256 (None for an interrupted write), size, time."""

    where: Path | str
    sha256: str | None
    size: int
    mtime: float


class Blobs(Protocol):
    """What the store needs of a blob storage."""

    location: str

    def put(self, sha256: str, data: bytes) -> None: ...
    def get(self, sha256: str) -> bytes | None: ...
    def exists(self, sha256: str) -> bool: ...
    def stat(self, sha256: str) -> tuple[int, float] | None: ...
    def delete(self, sha256: str) -> bool: ...
    def entries(self) -> Iterator[BlobEntry]: ...
    def remove(self, entry: BlobEntry) -> bool: ...


def checked_sha(sha256: str) -> str:
    """A sha256 digest (64 lowercase hex characters), the only thing a key is built from.

    Raises:
        IntegrityError: anything else.
    """
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise IntegrityError(f"{sha256!r} is not a sha256 digest.")
    return sha256


def verified(sha256: str, data: bytes) -> bytes:
    """The bytes, after checking they still hash to `sha256`.

    Raises:
        IntegrityError: they do not.
    """
    if hashlib.sha256(data).hexdigest() != sha256:
        raise IntegrityError(
            f"The artifact file {sha256[:12]}… no longer matches its recorded sha256: it was changed "
            "after it was written, so it will not be loaded."
        )
    return data


def open_blobs(url: str | None, default_root: Path | None) -> Blobs:
    """The blob storage at `url` (a folder, or an fsspec URL); without one, the local folder `default_root`.

    Raises:
        StoreError: neither is given, or the URL's scheme has no fsspec implementation installed.
    """
    url = (url or "").strip()
    if not url:
        if default_root is None:
            raise StoreError("No artifact storage is configured: set TRACKING_ARTIFACTS_URL.")
        return LocalBlobs(default_root)
    if "://" not in url:
        return LocalBlobs(Path(url).expanduser().resolve())
    return FsspecBlobs(url)


class LocalBlobs:
    """Blobs in a local folder, never followed through a link out of it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def path(self, sha256: str) -> Path:
        """The file of this digest, checked to stay inside the root."""
        root = self.root.resolve()
        path = (root / checked_sha(sha256)[:2] / sha256).resolve()
        if not path.is_relative_to(root):
            raise IntegrityError("An artifact path resolved outside the artifact root.")
        return path

    def put(self, sha256: str, data: bytes) -> None:
        path = self.path(sha256)
        if path.exists():  # shared with another artifact: a fresh time tells garbage collection it is in use again
            os.utime(path)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, sha256: str) -> bytes | None:
        try:
            data = self.path(sha256).read_bytes()
        except FileNotFoundError:
            return None
        return verified(sha256, data)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def stat(self, sha256: str) -> tuple[int, float] | None:
        try:
            info = self.path(sha256).stat()
        except FileNotFoundError:
            return None
        return info.st_size, info.st_mtime

    def delete(self, sha256: str) -> bool:
        return _unlink(self.path(sha256))

    def entries(self) -> Iterator[BlobEntry]:
        """The regular files the store names (`<xx>/<sha256>`, `<xx>/.tmp-*`), never through links."""
        root = self.root.resolve()
        if not root.is_dir() or root.is_symlink():
            return
        folders = sorted(
            Path(entry.path)
            for entry in os.scandir(root)
            if _PREFIX.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
        )
        for folder in folders:
            for entry in os.scandir(folder):
                if not entry.is_file(follow_symlinks=False):
                    continue
                if _SHA256.fullmatch(entry.name) and entry.name.startswith(folder.name):
                    sha: str | None = entry.name
                elif entry.name.startswith(".tmp-"):
                    sha = None
                else:
                    continue
                path = Path(entry.path)
                if path.resolve().is_relative_to(root):
                    info = entry.stat(follow_symlinks=False)
                    yield BlobEntry(path, sha, info.st_size, info.st_mtime)

    def remove(self, entry: BlobEntry) -> bool:
        return _unlink(Path(entry.where))


def _unlink(path: Path) -> bool:
    """Delete a file of the folder and its `<xx>` folder once empty; False when it was already gone."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    _remove_if_empty(path.parent)
    return True


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (or already gone)
        folder.rmdir()


class FsspecBlobs:
    """Blobs under an fsspec URL: `s3://bucket/prefix` (s3fs), `file:///folder`, `memory://name`, ..."""

    def __init__(self, url: str) -> None:
        import fsspec

        self.location = url
        self.protocol = url.split("://", 1)[0].lower()
        options: dict[str, Any] = {}
        if self.protocol in ("s3", "s3a"):
            # A listing cached by s3fs would hide what another process wrote since; credentials come from the
            # standard AWS variables and files, the endpoint (MinIO, a local S3) from TRACKING_S3_ENDPOINT_URL.
            options["use_listings_cache"] = False
            endpoint = setting("TRACKING_S3_ENDPOINT_URL")
            if endpoint:
                options["client_kwargs"] = {"endpoint_url": endpoint}
        elif self.protocol in ("file", "local"):
            options["auto_mkdir"] = True
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **options)
        except (ImportError, ValueError) as err:
            raise StoreError(
                f"The artifact storage {url} cannot be used: {err} (TRACKING_ARTIFACTS_URL takes a folder, "
                "s3://bucket/prefix, file:// or another fsspec URL whose package is installed)."
            ) from err
        self.root = root.rstrip("/")
        if not self.root.strip("/"):
            raise StoreError(f"The artifact storage {url} names no bucket or folder; use e.g. s3://bucket/prefix.")

    def key(self, sha256: str) -> str:
        """The object key of this digest: always `<root>/<sha256[:2]>/<sha256>`, inside the root."""
        return f"{self.root}/{checked_sha(sha256)[:2]}/{sha256}"

    def put(self, sha256: str, data: bytes) -> None:
        # Written again when already there: a store of the same bytes is harmless, and its fresh time tells
        # garbage collection the content is in use again (object stores have no `touch` of an existing key).
        with self._failures():
            self.fs.pipe_file(self.key(sha256), data)

    def get(self, sha256: str) -> bytes | None:
        key = self.key(sha256)
        with self._failures(missing_is_none=True):
            return verified(sha256, self.fs.cat_file(key))
        return None

    def exists(self, sha256: str) -> bool:
        key = self.key(sha256)
        with self._failures():
            return bool(self.fs.exists(key))

    def stat(self, sha256: str) -> tuple[int, float] | None:
        key = self.key(sha256)
        with self._failures(missing_is_none=True):
            info = self.fs.info(key)
            return int(info.get("size") or 0), _mtime(info)
        return None

    def delete(self, sha256: str) -> bool:
        key = self.key(sha256)
        with self._failures(missing_is_none=True):
            if self.fs.exists(key):  # S3 deletes a missing key without a word: ask first, to say what went
                self.fs.rm_file(key)
                return True
        return False

    def entries(self) -> Iterator[BlobEntry]:
        with self._failures(missing_is_none=True):
            found = self.fs.find(self.root, detail=True)
            root = self.root.lstrip("/") + "/"
            for name, info in sorted(found.items()):
                if not name.lstrip("/").startswith(root):
                    continue
                parts = name.lstrip("/")[len(root) :].split("/")
                if len(parts) != 2:
                    continue
                folder, leaf = parts
                if _PREFIX.fullmatch(folder) and _SHA256.fullmatch(leaf) and leaf.startswith(folder):
                    yield BlobEntry(self._url(name), leaf, int(info.get("size") or 0), _mtime(info))

    def remove(self, entry: BlobEntry) -> bool:
        if entry.sha256 is None:
            return False
        return self.delete(entry.sha256)

    def _url(self, name: str) -> str:
        return f"{self.protocol}://{name.lstrip('/')}" if self.protocol != "file" else f"file://{name}"

    @contextlib.contextmanager
    def _failures(self, missing_is_none: bool = False) -> Iterator[None]:
        """Storage failures as one sentence naming the URL; a missing key is left to the caller (suppressed)."""
        try:
            yield
        except FileNotFoundError as err:
            if any(word in str(err).lower() for word in ("specified bucket does not exist", "nosuchbucket")):
                raise StoreError(
                    f"The artifact storage {self.location} cannot be used: its bucket does not exist; create it "
                    "or fix TRACKING_ARTIFACTS_URL."
                ) from err
            if not missing_is_none:
                raise StoreError(f"The artifact storage {self.location} cannot be used: {err}.") from err
        except IntegrityError:
            raise
        except Exception as err:
            if not _storage_failure(err):
                raise
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise StoreError(
                f"The artifact storage {self.location} cannot be reached ({reason}); check TRACKING_ARTIFACTS_URL, "
                "TRACKING_S3_ENDPOINT_URL and the credentials."
            ) from err


def _storage_failure(err: BaseException) -> bool:
    """Whether an exception is the storage's (network, permission, service) rather than a bug here."""
    module = type(err).__module__ or ""
    return isinstance(err, OSError) or module.startswith(("botocore", "aiobotocore", "aiohttp", "s3fs", "fsspec"))


def _mtime(info: dict[str, Any]) -> float:
    """An fsspec info's modification time in seconds (S3: LastModified; local: mtime; memory: created)."""
    for field in ("LastModified", "mtime", "created", "last_modified"):
        value = info.get(field)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
    return 0.0
