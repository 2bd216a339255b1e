"""Uploaded documents (signed requisitions, identity documents): checked, encrypted, stored.

A document is accepted only when its content is a PDF, JPEG or PNG (magic bytes, whatever its
name says) that parses: images are fully decoded (Pillow); a PDF must have its header, its
end-of-file marker, and a cross-reference section where `startxref` says, with a document root.
Names are plain file names (no folders, '..', drive letters or control characters). The bytes are
sealed with the secrets key (SecretBox) before they reach the object store, and their SHA-256 (of
the plaintext) is kept to prove what was received.
"""

import hashlib
import io
import re
import uuid
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from services.common.objectstore import ObjectNotFound, ObjectStore
from services.common.refusals import Invalid, NotFound, TooLarge
from services.common.secretbox import SecretBox
from services.requisition.models import Document

PDF, JPEG, PNG = "application/pdf", "image/jpeg", "image/png"
EXTENSIONS = {PDF: (".pdf",), JPEG: (".jpg", ".jpeg"), PNG: (".png",)}
MAX_NAME = 150
_NAME_EXTRA = set(" ._-()[]+,'")
# Images larger than this many pixels are refused before decoding (a "decompression bomb").
MAX_PIXELS = 80_000_000


@dataclass(frozen=True)
class Checked:
    data: bytes
    filename: str
    content_type: str
    sha256: str


def check_filename(name: str) -> str:
    name = name.strip()
    if not name:
        raise Invalid("the document needs a file name")
    if len(name) > MAX_NAME:
        raise Invalid(f"the file name is longer than {MAX_NAME} characters")
    if "/" in name or "\\" in name or ".." in name or ":" in name or name.startswith("."):
        raise Invalid(f"the file name {name!r} must be a plain name: no folders, '..', ':' or leading dot")
    if not all(c.isalnum() or c in _NAME_EXTRA for c in name):
        raise Invalid(f"the file name {name!r} has characters other than letters, digits, spaces and ._-()[]+,'")
    return name


def sniff(data: bytes) -> str:
    """The content type from the first bytes, or Invalid."""
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    raise Invalid("the document is not a PDF, JPEG or PNG (checked by its content, not its name)")


_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF")
_OBJ = re.compile(rb"\s*\d+\s+\d+\s+obj\b")


def check_pdf(data: bytes) -> None:
    if not re.match(rb"%PDF-\d\.\d", data[:8]):
        raise Invalid("the PDF has no valid header")
    tail = data[-4096:]
    found = list(_STARTXREF.finditer(tail))
    if not found:
        raise Invalid("the PDF is truncated or damaged: no startxref/%%EOF at its end")
    offset = int(found[-1].group(1))
    if offset <= 0 or offset >= len(data):
        raise Invalid("the PDF is damaged: its cross-reference offset points outside the file")
    section = data[offset : offset + 64]
    if section.startswith(b"xref"):
        trailer = data.find(b"trailer", offset)
        if trailer < 0 or b"/Root" not in data[trailer : trailer + 4096]:
            raise Invalid("the PDF is damaged: its trailer names no document root")
    elif _OBJ.match(section):
        stream_dict = data[offset : offset + 4096]
        if b"/XRef" not in stream_dict or b"/Root" not in stream_dict:
            raise Invalid("the PDF is damaged: its cross-reference stream names no document root")
    else:
        raise Invalid("the PDF is damaged: no cross-reference section where startxref points")
    if data.count(b"endobj") < 1:
        raise Invalid("the PDF holds no objects")


def check_image(data: bytes, content_type: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise Invalid(f"the image is too large ({image.width}x{image.height} pixels)")
                expected = "JPEG" if content_type == JPEG else "PNG"
                if image.format != expected:
                    raise Invalid(f"the image is not a valid {expected}")
                image.load()  # decodes every pixel: a truncated or corrupt image fails here
    except Invalid:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        raise Invalid(f"the image cannot be read: {exc}") from exc
    except Image.DecompressionBombError as exc:
        raise Invalid("the image is too large") from exc


def check(data: bytes, filename: str, max_bytes: int) -> Checked:
    """Validate an upload (name, size, type by content, parses); Invalid/TooLarge name the problem."""
    name = check_filename(filename)
    if not data:
        raise Invalid("the document is empty")
    if len(data) > max_bytes:
        raise TooLarge(f"the document is larger than the {max_bytes // (1024 * 1024)} MB allowed")
    content_type = sniff(data)
    lowered = name.lower()
    known = [ext for exts in EXTENSIONS.values() for ext in exts]
    if any(lowered.endswith(ext) for ext in known) and not lowered.endswith(EXTENSIONS[content_type]):
        raise Invalid(f"the file is named {name!r} but its content is {content_type}")
    if content_type == PDF:
        check_pdf(data)
    else:
        check_image(data, content_type)
    return Checked(data, name, content_type, hashlib.sha256(data).hexdigest())


def store(
    store: ObjectStore,
    box: SecretBox,
    checked: Checked,
    *,
    owner_kind: str,
    owner_id: str,
    kind: str,
    created_us: int,
    created_by: str,
) -> Document:
    """Encrypt and store the document; returns its (uncommitted) row."""
    doc_id = uuid.uuid4().hex
    key = f"docs/{owner_kind}/{owner_id}/{doc_id}.sealed"
    store.ensure_bucket()
    store.put(key, box.seal_bytes(checked.data), {"sha256": checked.sha256}, "application/octet-stream")
    return Document(
        id=doc_id,
        owner_kind=owner_kind,
        owner_id=owner_id,
        kind=kind,
        filename=checked.filename,
        content_type=checked.content_type,
        sha256=checked.sha256,
        size=len(checked.data),
        object_key=key,
        created_us=created_us,
        created_by=created_by,
    )


def read(store: ObjectStore, box: SecretBox, row: Document) -> bytes:
    if row.deleted_us is not None:
        raise NotFound(f"document {row.id} was deleted")
    try:
        data = box.open_bytes(store.get(row.object_key))
    except ObjectNotFound as exc:
        raise NotFound(f"document {row.id} is missing from the store") from exc
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise Invalid(f"document {row.id} does not match its recorded SHA-256")
    return data
