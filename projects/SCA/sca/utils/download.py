"""Cached, verified, atomic downloads of weight files.

The cache follows Detectron2's convention (``$FVCORE_CACHE``, else ``~/.torch/iopath_cache``),
under ``sca/``; ``$SCA_CACHE`` overrides it. Hugging Face folders use the Hugging Face cache
(``$HF_HOME``/``$HF_HUB_CACHE``) through ``huggingface_hub``.
"""

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .atomic_file import atomic_write

logger = logging.getLogger(__name__)


class DownloadError(OSError):
    """A weight file could not be fetched; the message says where to put it by hand."""


class ChecksumError(OSError):
    """A file does not have the checksum its publisher gives."""


def cache_dir() -> Path:
    if os.environ.get("SCA_CACHE"):
        return Path(os.environ["SCA_CACHE"]).expanduser()
    base = os.environ.get("FVCORE_CACHE") or "~/.torch/iopath_cache"
    return Path(base).expanduser() / "sca"


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, sha256: str, remove: bool = True) -> None:
    """``sha256`` may be a prefix (official SAM files carry 6 hex digits in their names). With
    ``remove`` (cache files), a mismatching file is deleted, so that a damaged download never
    stays in the cache; a user's own file is only reported."""
    actual = sha256_of(path)
    if not actual.startswith(sha256.lower()):
        if remove:
            path.unlink(missing_ok=True)
        raise ChecksumError(
            f"{path}: SHA-256 {actual[:16]}... does not match the published {sha256}"
            + ("; the file was removed from the cache, download it again" if remove else "")
        )


def download(
    url: str, filename: str | None = None, sha256: str = "", timeout: float = 15.0
) -> Path:
    """The cached copy of ``url`` (downloaded first when missing), checked against ``sha256``.

    The file is written to a temporary name and renamed when complete and verified: an
    interrupted or corrupt download leaves nothing in the cache."""
    dest = cache_dir() / "downloads" / (filename or url.rsplit("/", 1)[-1])
    if dest.is_file():
        if sha256:
            verify_sha256(dest, sha256)
        return dest
    logger.info("Downloading %s to %s", url, dest)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with (
                atomic_write(dest) as f,
                tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar,
            ):
                for block in iter(lambda: response.read(1 << 20), b""):
                    f.write(block)
                    bar.update(len(block))
                if total is not None and bar.n != total:
                    raise DownloadError(f"{url}: got {bar.n} of {total} bytes")
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        if isinstance(e, (DownloadError, ChecksumError)):
            raise
        raise DownloadError(
            f"Cannot download {url} ({e}). Without network access, fetch it on another machine "
            f"and put it at {dest} (or point $SCA_CACHE to a folder that has downloads/{dest.name})"
        ) from e
    if sha256:
        verify_sha256(dest, sha256)
    return dest
