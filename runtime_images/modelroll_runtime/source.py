"""Bring the model at MODELROLL_MODEL_URI to a local path.

file:// URIs and plain paths (pvc mounts) are read in place. http(s), s3 and gs are
downloaded once into the model dir; an exclusive file lock lets one worker download
while the others wait and then reuse its result.

A download is capped (MODELROLL_MAX_MODEL_BYTES, which the operator sets just below the
size of the emptyDir it lands in): past the cap it stops and fails with that reason, rather
than fill the node's disk or get the pod evicted without one. An https download never
follows a redirect to plain http. URIs are logged and reported without their query string
or user info (`display_uri`): a presigned URL's signature must not reach logs or status.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.client import HTTPMessage
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("modelroll.source")

REMOTE_SCHEMES = ("http", "https", "s3", "gs")
_CHUNK = 1 << 20
_DONE_MARKER = ".complete"


class SourceError(Exception):
    """The model could not be fetched."""


def is_remote(uri: str) -> bool:
    return urllib.parse.urlsplit(uri).scheme in REMOTE_SCHEMES


def display_uri(uri: str) -> str:
    """`uri` as logs and status may show it: no user info, query string or fragment, where
    presigned URLs (S3, GCS, Azure SAS) and basic-auth URLs keep their secrets."""
    parts = urllib.parse.urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def redirect_allowed(from_url: str, to_url: str) -> bool:
    """Whether a download may follow a redirect: never from https to anything but https (a
    downgrade would expose the rest of the download, and what it fetches, to the network);
    only to http(s)."""
    source = urllib.parse.urlsplit(from_url).scheme.lower()
    target = urllib.parse.urlsplit(to_url).scheme.lower()
    if source == "https":
        return target == "https"
    return target in ("http", "https")


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    """urllib's redirect handling (the same limits on hops and methods), minus downgrades."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        target = urllib.parse.urljoin(req.full_url, newurl)
        if not redirect_allowed(req.full_url, target):
            raise SourceError(
                f"download of {display_uri(req.full_url)} refused: it redirects ({code}) "
                f"to {display_uri(target)}, and an https download follows only https"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_NoDowngrade())


def local_path(uri: str, model_dir: Path, max_bytes: int) -> Path:
    """The local file or directory holding the model, downloading it first if remote; a
    download of more than `max_bytes` in all fails (SourceError) and leaves nothing behind."""
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
            try:
                if parts.scheme in ("http", "https"):
                    _download_http(uri, target, max_bytes)
                elif parts.scheme == "s3":
                    _download_s3(parts.netloc, parts.path.lstrip("/"), target, max_bytes)
                else:
                    _download_gs(parts.netloc, parts.path.lstrip("/"), target, max_bytes)
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)  # no partial model left on the disk
                raise
            (target / _DONE_MARKER).touch()
    return target


def _too_big(uri: str, size: int | str, max_bytes: int) -> SourceError:
    return SourceError(
        f"model at {display_uri(uri)} is larger than MODELROLL_MAX_MODEL_BYTES "
        f"({max_bytes} bytes): {size} bytes; refusing to download it"
    )


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


def _download_http(uri: str, target: Path, max_bytes: int) -> None:
    name = _file_name(urllib.parse.urlsplit(uri).path)
    shown = display_uri(uri)
    started = time.monotonic()
    try:
        with _OPENER.open(uri, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0)
            if total > max_bytes:  # refused before the first byte is written
                raise _too_big(uri, total, max_bytes)
            done, last_report = 0, started
            with (target / name).open("wb") as out:
                while chunk := response.read(_CHUNK):
                    if done + len(chunk) > max_bytes:  # a missing or wrong Content-Length
                        raise _too_big(uri, f"more than {max_bytes}", max_bytes)
                    out.write(chunk)
                    done += len(chunk)
                    if time.monotonic() - last_report > 2:
                        last_report = time.monotonic()
                        log.info("downloading", extra={"uri": shown, "bytes": done, "total": total})
    except OSError as exc:
        # urllib's HTTPError and URLError say the status or the socket error, not the URL
        raise SourceError(f"download of {shown} failed: {exc}") from exc
    log.info(
        "downloaded",
        extra={"uri": shown, "bytes": done, "seconds": round(time.monotonic() - started, 3)},
    )


def _download_s3(bucket: str, prefix: str, target: Path, max_bytes: int) -> None:
    try:
        import boto3
    except ImportError as exc:
        raise SourceError("s3:// needs the s3 extra (boto3)") from exc
    # credentials and endpoint come from the standard AWS_* variables the operator maps
    # from the credentials Secret
    client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    paginator = client.get_paginator("list_objects_v2")
    items = [
        item
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    ]
    if not items:
        raise SourceError(f"nothing found at s3://{bucket}/{prefix}")
    total = sum(int(item["Size"]) for item in items)
    if total > max_bytes:  # the listing's sizes are the objects': nothing is fetched
        raise _too_big(f"s3://{bucket}/{prefix}", total, max_bytes)
    written = 0
    for item in items:
        key = item["Key"]
        relative = key[len(prefix) :].lstrip("/") or _file_name(key)
        destination = _inside(target, relative)
        destination.parent.mkdir(parents=True, exist_ok=True)
        log.info("downloading", extra={"uri": f"s3://{bucket}/{key}", "total": item["Size"]})
        client.download_file(bucket, key, str(destination))
        written += destination.stat().st_size
        if written > max_bytes:  # an object replaced by a larger one since the listing
            raise _too_big(f"s3://{bucket}/{prefix}", f"more than {max_bytes}", max_bytes)


def _gcs_client() -> Any:
    """google-cloud-storage's client. Google's libraries read GOOGLE_APPLICATION_CREDENTIALS
    as the path of a key file, but the credentials Secret's key reaches the pod as the
    variable's value: a value that is a service account key's JSON is taken as the key.
    A path, or no variable (workload identity, the node's account), is Google's default."""
    try:
        from google.cloud import storage
    except ImportError as exc:
        raise SourceError("gs:// needs the gs extra (google-cloud-storage)") from exc
    key = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "")
    if not key.lstrip().startswith("{"):
        return storage.Client()
    try:
        return storage.Client.from_service_account_info(json.loads(key))
    except (ValueError, KeyError) as exc:
        # Never the value itself, nor a parser's excerpt of it: it is a private key.
        raise SourceError(
            "GOOGLE_APPLICATION_CREDENTIALS holds JSON that is not a service account key "
            f"({type(exc).__name__})"
        ) from None


def _download_gs(bucket_name: str, prefix: str, target: Path, max_bytes: int) -> None:
    client = _gcs_client()
    blobs = [b for b in client.list_blobs(bucket_name, prefix=prefix) if not b.name.endswith("/")]
    if not blobs:
        raise SourceError(f"nothing found at gs://{bucket_name}/{prefix}")
    total = sum(int(blob.size or 0) for blob in blobs)
    if total > max_bytes:
        raise _too_big(f"gs://{bucket_name}/{prefix}", total, max_bytes)
    written = 0
    for blob in blobs:
        relative = blob.name[len(prefix) :].lstrip("/") or _file_name(blob.name)
        destination = _inside(target, relative)
        destination.parent.mkdir(parents=True, exist_ok=True)
        log.info("downloading", extra={"uri": f"gs://{bucket_name}/{blob.name}"})
        blob.download_to_filename(str(destination))
        written += destination.stat().st_size
        if written > max_bytes:  # an object replaced by a larger one since the listing
            raise _too_big(f"gs://{bucket_name}/{prefix}", f"more than {max_bytes}", max_bytes)


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
