"""Bring the model at MODELROLL_MODEL_URI to a local path.

file:// URIs and plain paths (pvc mounts) are read in place. http(s), s3 and gs are
downloaded once into the model dir; an exclusive file lock lets one worker download
while the others wait and then reuse its result.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("modelroll.source")

REMOTE_SCHEMES = ("http", "https", "s3", "gs")
_CHUNK = 1 << 20
_DONE_MARKER = ".complete"


class SourceError(Exception):
    """The model could not be fetched."""


def is_remote(uri: str) -> bool:
    return urllib.parse.urlsplit(uri).scheme in REMOTE_SCHEMES


def local_path(uri: str, model_dir: Path) -> Path:
    """The local file or directory holding the model, downloading it first if remote."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme == "":  # a plain path: a pvc or emptyDir the operator mounted
        return Path(uri)
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    if parts.scheme not in REMOTE_SCHEMES:
        raise SourceError(f"unsupported model URI scheme {parts.scheme!r}")
    target = model_dir / hashlib.sha256(uri.encode()).hexdigest()[:16]
    with exclusive(model_dir / (target.name + ".lock")):
        if not (target / _DONE_MARKER).exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            if parts.scheme in ("http", "https"):
                _download_http(uri, target)
            elif parts.scheme == "s3":
                _download_s3(parts.netloc, parts.path.lstrip("/"), target)
            else:
                _download_gs(parts.netloc, parts.path.lstrip("/"), target)
            (target / _DONE_MARKER).touch()
    return target


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _file_name(path: str) -> str:
    name = os.path.basename(urllib.parse.unquote(path))
    if not name or name in (".", ".."):
        raise SourceError(f"cannot tell a file name from {path!r}")
    return name


def _download_http(uri: str, target: Path) -> None:
    name = _file_name(urllib.parse.urlsplit(uri).path)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(uri, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0)
            done, last_report = 0, started
            with (target / name).open("wb") as out:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if time.monotonic() - last_report > 2:
                        last_report = time.monotonic()
                        log.info("downloading", extra={"uri": uri, "bytes": done, "total": total})
    except OSError as exc:
        raise SourceError(f"download of {uri} failed: {exc}") from exc
    log.info(
        "downloaded",
        extra={"uri": uri, "bytes": done, "seconds": round(time.monotonic() - started, 3)},
    )


def _download_s3(bucket: str, prefix: str, target: Path) -> None:
    try:
        import boto3
    except ImportError as exc:
        raise SourceError("s3:// needs the s3 extra (boto3)") from exc
    # credentials and endpoint come from the standard AWS_* variables the operator injects
    client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    paginator = client.get_paginator("list_objects_v2")
    count = 0
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            relative = key[len(prefix) :].lstrip("/") or _file_name(key)
            destination = _inside(target, relative)
            destination.parent.mkdir(parents=True, exist_ok=True)
            log.info("downloading", extra={"uri": f"s3://{bucket}/{key}", "total": item["Size"]})
            client.download_file(bucket, key, str(destination))
            count += 1
    if not count:
        raise SourceError(f"nothing found at s3://{bucket}/{prefix}")


def _download_gs(bucket_name: str, prefix: str, target: Path) -> None:
    try:
        from google.cloud import storage
    except ImportError as exc:
        raise SourceError("gs:// needs the gs extra (google-cloud-storage)") from exc
    client = storage.Client()
    count = 0
    for blob in client.list_blobs(bucket_name, prefix=prefix):
        if blob.name.endswith("/"):
            continue
        relative = blob.name[len(prefix) :].lstrip("/") or _file_name(blob.name)
        destination = _inside(target, relative)
        destination.parent.mkdir(parents=True, exist_ok=True)
        log.info("downloading", extra={"uri": f"gs://{bucket_name}/{blob.name}"})
        blob.download_to_filename(str(destination))
        count += 1
    if not count:
        raise SourceError(f"nothing found at gs://{bucket_name}/{prefix}")


def _inside(root: Path, relative: str) -> Path:
    destination = (root / relative).resolve()
    if not destination.is_relative_to(root.resolve()):
        raise SourceError(f"object key {relative!r} escapes the model directory")
    return destination


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
