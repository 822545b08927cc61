"""Where img_id points: the node's image directory, a URL, or the archipelago store.

null                      the disk already holds the image (cloned by the storage)
NAME                      a file in [images] dir, else an image or snapshot of the store
local://NAME              a file in [images] dir only
archipelago://NAME        an image or snapshot of the archipelago store
http(s)://...             a download (credentials never logged)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage.filestore.layout import check_name
from ganeti_ext.extstorage.images.sources import describe, is_url


@dataclass(frozen=True)
class ImageRef:
    kind: str  # local, url or store
    location: str  # a file path, or the URL itself
    description: str  # safe for logs and error messages
    size: int | None = None  # decoded size when the store knows it


def check_reference(img_id: str) -> tuple[str, str]:
    """(scheme, name) of a non-URL img_id, checked; ("url", img_id) for a URL."""
    if is_url(img_id):
        return "url", img_id
    scheme, sep, name = img_id.partition("://")
    if not sep:
        scheme, name = "", img_id
    if scheme not in ("", "local", "archipelago"):
        raise ValidationError(
            f"OS parameter img_id: unknown scheme {scheme}:// (null, local://, "
            "archipelago://, http://, https://)"
        )
    check_name("image", name)
    return scheme, name


def resolve(img_id: str, images_dir: Path, store=None) -> ImageRef:
    """The image `img_id` names; an error naming where it was looked for."""
    scheme, name = check_reference(img_id)
    if scheme == "url":
        return ImageRef("url", img_id, describe(img_id))
    if scheme in ("", "local"):
        path = images_dir / name
        if path.is_file():
            return ImageRef("local", str(path), f"{name} ({path})")
        if scheme == "local":
            raise ValidationError(f"image {name}: no such file in {images_dir}")
    found = store.map(name) if store is not None else None
    if found is not None:
        data = store.origin_data(name)
        return ImageRef("store", str(data), f"{name} (archipelago {found.kind})", found.size)
    where = f"{images_dir}" + (" or the archipelago store" if store is not None else "")
    raise ValidationError(f"image {name}: not found in {where}")
