"""Image resolution and loading: where an image_uri may point, and how it becomes stored pixels.

Runs inside worker processes, so every function here is pure and picklable.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import re
from dataclasses import dataclass

import fsspec
from PIL import Image, ImageOps, UnidentifiedImageError

from ml.catalog.contract import IngestSettings, QuarantineReason

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")
_ODD_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]{1,}):")  # data:, javascript:, mailto: ...
WHITE = (255, 255, 255)


@dataclass(frozen=True)
class ImageContext:
    """What a worker needs to resolve and normalise images of one catalog file."""

    catalog_dir: str  # absolute local folder or fsspec URL of the folder holding the catalog file
    settings: IngestSettings


@dataclass(frozen=True)
class ImageResult:
    reason: QuarantineReason | None
    detail: str = ""
    image_hash: str | None = None
    pixels: bytes | None = None
    width: int = 0
    height: int = 0


def url_scheme(uri: str) -> str | None:
    match = _SCHEME.match(uri) or _ODD_SCHEME.match(uri)
    return match.group(1).lower() if match else None


def _inside(path: str, roots: list[str]) -> bool:
    return any(os.path.commonpath([path, root]) == root for root in roots)


def resolve_image_uri(uri: str | None, ctx: ImageContext) -> tuple[str | None, QuarantineReason | None, str]:
    """Return (location, None, "") or (None, reason, detail).

    Relative paths resolve against the catalog's folder; local paths, after following
    links, must stay inside that folder or one of `allowed_image_roots`.
    """
    if uri is None or not uri.strip():
        return None, QuarantineReason.MISSING_IMAGE_URI, "image_uri is empty"
    uri = uri.strip()
    scheme = url_scheme(uri)
    if scheme is not None and len(scheme) > 1:  # one letter would be a Windows drive
        if scheme not in ctx.settings.url_schemes:
            return None, QuarantineReason.UNSUPPORTED_SCHEME, f"scheme {scheme!r} is not one of {', '.join(ctx.settings.url_schemes)}"
        if scheme != "file":
            return uri, None, ""
        uri = uri[len("file://") :]
    catalog_scheme = url_scheme(ctx.catalog_dir)
    if catalog_scheme not in (None, "file") and not os.path.isabs(uri):
        joined = posixpath.normpath(posixpath.join(ctx.catalog_dir, uri))
        if not joined.startswith(ctx.catalog_dir.rstrip("/") + "/"):
            return None, QuarantineReason.PATH_ESCAPE, f"{uri!r} leaves the catalog folder"
        return joined, None, ""
    base = ctx.catalog_dir[len("file://") :] if catalog_scheme == "file" else ctx.catalog_dir
    path = os.path.realpath(os.path.join(base, uri))
    roots = [os.path.realpath(base), *(os.path.realpath(r) for r in ctx.settings.allowed_image_roots)]
    if not _inside(path, roots):
        return None, QuarantineReason.PATH_ESCAPE, f"{uri!r} resolves outside the catalog folder and allowed_image_roots"
    return path, None, ""


def _read_bytes(location: str, limit: int) -> bytes:
    if url_scheme(location) is None:
        size = os.path.getsize(location)
        if size > limit:
            raise _TooLarge(f"file is {size} bytes, over the {limit}-byte limit")
        with open(location, "rb") as handle:
            return handle.read()
    with fsspec.open(location, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise _TooLarge(f"file is over the {limit}-byte limit")
    return data


class _TooLarge(Exception):
    pass


def normalise_image(img: Image.Image, size: int, upscale_small: bool) -> Image.Image:
    """Square RGB of side `size`: transparency flattened on white, aspect kept, white padding."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        img = flat
    elif img.mode != "RGB":
        img = img.convert("RGB")
    width, height = img.size
    if max(width, height) > size or upscale_small:
        scale = size / max(width, height)
        img = img.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BICUBIC)
    if img.size == (size, size):
        return img
    canvas = Image.new("RGB", (size, size), WHITE)
    canvas.paste(img, ((size - img.size[0]) // 2, (size - img.size[1]) // 2))
    return canvas


def load_image(uri: str | None, ctx: ImageContext) -> ImageResult:
    location, reason, detail = resolve_image_uri(uri, ctx)
    if reason is not None:
        return ImageResult(reason, detail)
    s = ctx.settings
    try:
        data = _read_bytes(location, s.max_image_bytes)
    except _TooLarge as exc:
        return ImageResult(QuarantineReason.IMAGE_TOO_LARGE, str(exc))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return ImageResult(QuarantineReason.IMAGE_NOT_FOUND, f"no file at {uri!r}")
    except OSError as exc:
        return ImageResult(QuarantineReason.UNREADABLE_IMAGE, f"cannot read {uri!r}: {exc}")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > s.max_image_pixels:
                return ImageResult(
                    QuarantineReason.IMAGE_TOO_LARGE,
                    f"{width}x{height} pixels is over the {s.max_image_pixels}-pixel limit (decompression bomb guard)",
                )
            img.load()
            pixels = normalise_image(img, s.image_size, s.upscale_small).tobytes()
    except Image.DecompressionBombError as exc:
        return ImageResult(QuarantineReason.IMAGE_TOO_LARGE, str(exc))
    except UnidentifiedImageError:
        return ImageResult(QuarantineReason.NOT_AN_IMAGE, f"{uri!r} is not an image Pillow can identify")
    except (OSError, SyntaxError, ValueError) as exc:
        return ImageResult(QuarantineReason.UNREADABLE_IMAGE, f"cannot decode {uri!r}: {exc}")
    return ImageResult(None, "", hashlib.blake2b(pixels, digest_size=16).hexdigest(), pixels, width, height)


def load_images(uris: list[str | None], ctx: ImageContext) -> list[ImageResult]:
    """Batch form of load_image, the unit of work sent to a compute backend."""
    return [load_image(uri, ctx) for uri in uris]
