import os

import numpy as np
import pytest
from PIL import Image

from ml.catalog.contract import IngestSettings, QuarantineReason
from ml.catalog.images import ImageContext, load_image, normalise_image, resolve_image_uri
from tests.conftest import png_with_declared_size, solid_png


@pytest.fixture
def ctx(tmp_path):
    (tmp_path / "cat").mkdir()
    return ImageContext(catalog_dir=str(tmp_path / "cat"), settings=IngestSettings(image_size=32))


@pytest.mark.parametrize(
    ("uri", "reason"),
    [("a/b.png", None), ("../x.png", QuarantineReason.PATH_ESCAPE), ("a/../../x.png", QuarantineReason.PATH_ESCAPE),
     ("/etc/passwd", QuarantineReason.PATH_ESCAPE), ("s3://bucket/x.png", None), ("https://cdn.example/x.jpg", None),
     ("ftp://h/x.png", QuarantineReason.UNSUPPORTED_SCHEME), ("javascript:alert(1)", QuarantineReason.UNSUPPORTED_SCHEME),
     ("", QuarantineReason.MISSING_IMAGE_URI), (None, QuarantineReason.MISSING_IMAGE_URI)],
)
def test_resolution_keeps_paths_inside_the_catalog(ctx, uri, reason):
    assert resolve_image_uri(uri, ctx)[1] == reason


def test_symlink_out_of_the_catalog_is_an_escape(ctx, tmp_path):
    solid_png(tmp_path / "secret.png", (1, 1, 1))
    os.symlink(tmp_path / "secret.png", tmp_path / "cat" / "link.png")
    assert resolve_image_uri("link.png", ctx)[1] == QuarantineReason.PATH_ESCAPE
    allowed = ImageContext(ctx.catalog_dir, IngestSettings(allowed_image_roots=(str(tmp_path),)))
    assert resolve_image_uri("link.png", allowed)[1] is None


def test_load_normalises_to_square_rgb_on_white(ctx, tmp_path):
    solid_png(tmp_path / "cat" / "tall.png", (200, 30, 40), size=(10, 20))
    result = load_image("tall.png", ctx)
    assert result.reason is None and (result.width, result.height) == (10, 20)
    pixels = np.frombuffer(result.pixels, np.uint8).reshape(32, 32, 3)
    assert tuple(pixels[16, 16]) == (200, 30, 40) and tuple(pixels[16, 0]) == (255, 255, 255)
    again = load_image("tall.png", ctx)
    assert again.image_hash == result.image_hash and len(result.image_hash) == 32


def test_transparency_is_flattened_on_white():
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    out = np.asarray(normalise_image(img, 4, upscale_small=False))
    assert (out == 255).all()


@pytest.mark.parametrize(
    ("writer", "reason"),
    [(lambda p: p.write_text("hello"), QuarantineReason.NOT_AN_IMAGE),
     (lambda p: png_with_declared_size(p, 30_000, 30_000), QuarantineReason.IMAGE_TOO_LARGE),
     (lambda p: png_with_declared_size(p, 9_000, 9_000), QuarantineReason.IMAGE_TOO_LARGE),
     (lambda p: (solid_png(p, (1, 2, 3), (64, 64)), p.write_bytes(p.read_bytes()[:60])), QuarantineReason.UNREADABLE_IMAGE)],
)
def test_bad_files_get_their_reason(ctx, tmp_path, writer, reason):
    path = tmp_path / "cat" / "x.png"
    writer(path)
    result = load_image("x.png", ctx)
    assert result.reason == reason and result.pixels is None and result.detail


def test_missing_file_and_byte_limit(ctx, tmp_path):
    assert load_image("nope.png", ctx).reason == QuarantineReason.IMAGE_NOT_FOUND
    solid_png(tmp_path / "cat" / "a.png", (1, 2, 3))
    small = ImageContext(ctx.catalog_dir, IngestSettings(max_image_bytes=10))
    assert load_image("a.png", small).reason == QuarantineReason.IMAGE_TOO_LARGE
