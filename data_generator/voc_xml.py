"""Reading one Pascal VOC annotation file: the reader behind `DataGenerator.parse_xml` and
`eval_utils.voc_io`.

`read_voc_xml` turns ``<id>.xml`` into plain values (the ``<size>`` texts and, per direct
``<object>``, its name, flags and box) and decides nothing else: what to do with an unknown
class, a bad box or a box outside the image is the caller's policy.

The ``<truncated>``/``<difficult>`` rule is the original's (``int(text)``, non-zero = set),
made total: a missing or empty tag is 0, a number is truncated to an integer (``'1.0'`` -> 1),
and anything else is 0 with the reason in ``VocObject.flag_errors`` (the original crashed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from lxml import etree

from data_generator.labels import parse_number

BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
"""The Pascal VOC class names, index = class id (0 the background)."""


class VocXmlError(ValueError):
    """An annotation file is not well-formed XML."""


def parse_flag(text: str | None) -> int:
    """A ``<truncated>``/``<difficult>`` value: missing or empty -> 0, ``'1'`` -> 1,
    ``'1.0'`` -> 1; raises ValueError for a text that is not a number."""
    if text is None or text == "":
        return 0
    return int(parse_number(text))


@dataclass
class VocObject:
    """One ``<object>`` of an annotation, as read (nothing dropped or fixed)."""

    name: str
    """The stripped ``<name>`` text (``''`` when missing)."""
    truncated: int
    difficult: int
    flag_errors: dict[str, str] = field(default_factory=dict)
    """``{'truncated' | 'difficult': reason}`` for a flag that is not a number (read as 0)."""
    box: dict[str, int | float] | None = None
    """``{'xmin', 'ymin', 'xmax', 'ymax'}`` (ints when integral), or None for a bad box."""
    bad_field: str | None = None
    """Why ``box`` is None: ``'bndbox'`` (no ``<bndbox>``) or the coordinate that is missing
    or not a number..."""
    bad_text: str | None = None
    """...and that coordinate's text (None when the tag is missing)."""

    @property
    def box_error(self) -> str | None:
        """What is wrong with the box, e.g. ``"<xmin> = 'ten'"`` (None when it is valid)."""
        if self.box is not None:
            return None
        if self.bad_field == "bndbox":
            return "no <bndbox>"
        return f"<{self.bad_field}> = {self.bad_text!r}"


@dataclass
class VocAnnotation:
    """The content of one annotation file."""

    path: str
    width_text: str | None
    """``<size><width>`` as written (None when missing)."""
    height_text: str | None
    objects: list[VocObject]

    def size(self) -> tuple[int | float, int | float] | None:
        """``(width, height)`` from ``<size>``, or None when missing, not numbers or not > 0."""
        try:
            width, height = parse_number(self.width_text), parse_number(self.height_text)
        except ValueError:
            return None
        return (width, height) if width > 0 and height > 0 else None


def _read_object(element) -> VocObject:
    name = (element.findtext("name") or "").strip()
    flags, errors = {}, {}
    for flag in ("truncated", "difficult"):
        try:
            flags[flag] = parse_flag(element.findtext(flag))
        except ValueError as error:
            flags[flag] = 0
            errors[flag] = str(error)
    obj = VocObject(name, flags["truncated"], flags["difficult"], errors)
    bndbox = element.find("bndbox")
    if bndbox is None:
        obj.bad_field = "bndbox"
        return obj
    box = {}
    for key in BOX_FIELDS:
        text = bndbox.findtext(key)
        try:
            box[key] = parse_number(text)
        except ValueError:
            obj.bad_field, obj.bad_text = key, text
            return obj
    obj.box = box
    return obj


def read_voc_xml(xml_path: str | os.PathLike) -> VocAnnotation:
    """Reads one VOC annotation file.

    Only the direct ``<object>`` children of the root count (an object's ``<part>`` boxes are
    not objects), in file order; an object's box is its first ``<bndbox>``.

    Raises:
        OSError: the file cannot be read.
        VocXmlError: the file is not well-formed XML.
    """
    try:
        root = etree.parse(os.fspath(xml_path)).getroot()
    except etree.XMLSyntaxError as error:
        raise VocXmlError(str(error)) from None
    return VocAnnotation(
        path=os.fspath(xml_path),
        width_text=root.findtext("size/width"),
        height_text=root.findtext("size/height"),
        objects=[_read_object(element) for element in root.findall("object")],
    )
