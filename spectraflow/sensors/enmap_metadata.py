"""Parse an EnMAP L2A ``METADATA.XML`` into a band table and grid facts (pure code, no I/O).

DLR's L2A metadata (root ``level_X``, no namespace) describes every band under
``specific/bandCharacterisation/bandID[@number]`` with ``wavelengthCenterOfBand`` and
``FWHMOfBand`` (nm) and ``GainOfBand``/``OffsetOfBand`` (reflectance = DN × gain + offset),
and the merged spectral image under ``product/image/merge/{channels, dimension/rows,
dimension/columns}`` and ``product/ortho/{projection, resolution}``. Only the band
characterisation is required; the grid facts are read when present so that the reader can
cross-check them against the raster.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from spectraflow.errors import SceneFormatError
from spectraflow.sensors.bands import BandTable

__all__ = ["EnmapMetadata", "parse_metadata"]

_FIX = (
    "download the product's METADATA.XML again, or drop the metadata asset to use the item's bands"
)


@dataclass(frozen=True)
class EnmapMetadata:
    """What the reader needs from ``METADATA.XML``.

    Attributes
    ----------
    bands
        Bands in file order (``bandID`` number 1 first): names are the band numbers as strings,
        wavelengths and FWHM in nm, ``scale``/``offset`` the gain and offset; ``good`` is True
        for every band (the XML has no good-band flags).
    channels
        ``product/image/merge/channels``, or None when absent.
    rows, columns
        ``product/image/merge/dimension/{rows, columns}`` of the spectral image, or None.
    projection
        ``product/ortho/projection`` as written (e.g. ``"UTM_Zone13_North"``), or None.
    resolution_m
        ``product/ortho/resolution`` in metres, or None.
    """

    bands: BandTable
    channels: int | None = None
    rows: int | None = None
    columns: int | None = None
    projection: str | None = None
    resolution_m: float | None = None


def parse_metadata(text: str | bytes, *, where: str) -> EnmapMetadata:
    """Parse the text of an EnMAP L2A ``METADATA.XML``.

    Parameters
    ----------
    text
        The whole XML document.
    where
        The file or URL it came from, named in errors.

    Returns
    -------
    EnmapMetadata
        The band table and the grid facts.

    Raises
    ------
    SceneFormatError
        When the document is not XML, has no band characterisation, or a band lacks a number,
        a wavelength, a FWHM, a gain or an offset, or the band numbers are not 1…n.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise SceneFormatError(
            f"METADATA.XML is not well-formed XML ({exc})", where=where, fix=_FIX
        ) from None
    _strip_namespaces(root)
    characterisation = root.find("specific/bandCharacterisation")
    entries = [] if characterisation is None else characterisation.findall("bandID")
    if not entries:
        raise SceneFormatError(
            "METADATA.XML has no specific/bandCharacterisation/bandID entries",
            where=where,
            fix=_FIX,
        )
    rows: list[tuple[int, float, float, float, float]] = []
    for entry in entries:
        number = _int(entry.get("number"), where=where, what="bandID@number")
        label = f"bandID {number}"
        rows.append(
            (
                number,
                _float(entry.findtext("wavelengthCenterOfBand"), where, label, "wavelength"),
                _float(entry.findtext("FWHMOfBand"), where, label, "FWHM"),
                _float(entry.findtext("GainOfBand"), where, label, "gain"),
                _float(entry.findtext("OffsetOfBand"), where, label, "offset"),
            )
        )
    rows.sort()
    numbers = [r[0] for r in rows]
    if numbers != list(range(1, len(rows) + 1)):
        raise SceneFormatError(
            f"METADATA.XML band numbers are not 1…{len(rows)} (got {_summary(numbers)})",
            where=where,
            fix=_FIX,
        )
    bands = BandTable.from_arrays(
        [r[1] for r in rows],
        [r[2] for r in rows],
        name=[str(r[0]) for r in rows],
        scale=[r[3] for r in rows],
        offset=[r[4] for r in rows],
    )
    merge = root.find("product/image/merge")
    ortho = root.find("product/ortho")
    return EnmapMetadata(
        bands=bands,
        channels=_optional_int(merge, "channels", where),
        rows=_optional_int(merge, "dimension/rows", where),
        columns=_optional_int(merge, "dimension/columns", where),
        projection=_optional_text(ortho, "projection"),
        resolution_m=_optional_float(ortho, "resolution", where),
    )


def _strip_namespaces(root: ET.Element) -> None:
    # Tolerate a default namespace: DLR's files have none, but paths must not depend on it.
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag.startswith("{"):
            el.tag = el.tag.split("}", 1)[1]


def _float(text: str | None, where: str, label: str, what: str) -> float:
    try:
        value = float((text or "").strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise SceneFormatError(
            f"METADATA.XML {label} has no valid {what} (got {text!r})", where=where, fix=_FIX
        )
    return value


def _int(text: str | None, *, where: str, what: str) -> int:
    try:
        return int((text or "").strip())
    except ValueError:
        raise SceneFormatError(
            f"METADATA.XML {what} is not an integer (got {text!r})", where=where, fix=_FIX
        ) from None


def _optional_text(parent: ET.Element | None, path: str) -> str | None:
    if parent is None:
        return None
    text = parent.findtext(path)
    return text.strip() if text and text.strip() else None


def _optional_int(parent: ET.Element | None, path: str, where: str) -> int | None:
    text = _optional_text(parent, path)
    return None if text is None else _int(text, where=where, what=path)


def _optional_float(parent: ET.Element | None, path: str, where: str) -> float | None:
    text = _optional_text(parent, path)
    return None if text is None else _float(text, where, "product/ortho", path)


def _summary(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:5])
    return shown + (", …" if len(numbers) > 5 else "")
