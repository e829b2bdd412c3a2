"""Fetches an official SCA release from the Hugging Face hub and converts it once, in the cache."""

import logging
from pathlib import Path

from ..utils.atomic_file import atomic_write
from ..utils.download import ChecksumError, DownloadError, cache_dir, sha256_of
from .catalog import Release
from .convert import CONFIG_NAME, convert_release

logger = logging.getLogger(__name__)


def _published_sha256(release: Release) -> dict[str, str]:
    """The SHA-256 the hub gives for each of the release's LFS files (weights)."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(release.hub_repo, revision=release.revision, files_metadata=True)
    return {s.rfilename: s.lfs.sha256 for s in info.siblings if getattr(s, "lfs", None)}


def download_release(release: Release) -> Path:
    """The release folder in the Hugging Face cache, downloaded when missing; weight files are
    checked against the hub's SHA-256 and a mismatching file is removed from the cache."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(
            snapshot_download(
                release.hub_repo, revision=release.revision, allow_patterns=list(release.files)
            )
        )
        published = _published_sha256(release)
    except Exception as e:  # huggingface_hub raises many types for network failures
        raise DownloadError(
            f"Cannot download the SCA release {release.hub_repo} (revision {release.revision}): "
            f"{e}. Without network access, download the folder on another machine (e.g. "
            f"`huggingface-cli download {release.hub_repo}`), then convert it with "
            "`python tools/convert_sca_release.py FOLDER OUT` and use OUT/config.yaml"
        ) from e
    for name, sha256 in published.items():
        path = folder / name
        if path.is_file() and sha256_of(path) != sha256:
            path.resolve().unlink()  # the blob behind the snapshot link
            raise ChecksumError(
                f"{path}: SHA-256 differs from the hub's {sha256}; removed it, download again"
            )
    return folder


def converted_release(name: str, release: Release) -> Path:
    """``config.yaml`` of the converted release, converting it the first time."""
    out = cache_dir() / "converted" / f"{name}@{release.revision}"
    config = out / CONFIG_NAME
    if config.is_file():
        return config
    folder = download_release(release)
    logger.info("Converting %s into %s (once)", release.hub_repo, out)
    converted = convert_release(folder, out)
    with atomic_write(out / "SOURCE", "w") as f:
        f.write(f"{release.hub_repo}@{release.revision}\n")
    return converted
