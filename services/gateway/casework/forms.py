"""Uploads of the casework routes (signed requisitions, identity documents): multipart/form-data
read exactly and binary-safe, with clear 4xx answers for anything else."""

from email.message import Message

from fastapi import HTTPException, Request


class Form:
    """A multipart/form-data body: text fields and files (the uploads' only format)."""

    def __init__(self, fields: dict[str, list[str]], files: dict[str, tuple[str, bytes]]) -> None:
        self.fields = fields
        self.files = files

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[0] if values else default

    def all(self, name: str) -> list[str]:
        return [v for value in self.fields.get(name, []) for v in value.split(",") if v.strip()]

    def file(self, name: str) -> tuple[str, bytes]:
        if name not in self.files:
            raise HTTPException(422, f"the form has no file part named {name!r}")
        return self.files[name]


def _header_params(value: str) -> Message:
    message = Message()
    message["content-disposition"] = value
    return message


async def read_form(request: Request, max_fields: int = 40) -> Form:
    """Parse multipart/form-data exactly (binary-safe). 415 for anything else, 400 if malformed."""
    content_type = request.headers.get("content-type", "")
    kind = content_type.partition(";")[0]
    if kind.strip().lower() != "multipart/form-data":
        raise HTTPException(415, "send the document as multipart/form-data (fields and a file part)")
    holder = Message()
    holder["content-type"] = content_type
    boundary = holder.get_param("boundary")
    if not isinstance(boundary, str) or not boundary or len(boundary) > 200:
        raise HTTPException(400, "the multipart body has no boundary")
    body = await request.body()
    delimiter = b"--" + boundary.encode("latin-1")
    pieces = body.split(b"\r\n" + delimiter)
    if not pieces or not pieces[0].startswith(delimiter):
        raise HTTPException(400, "the multipart body does not start with its boundary")
    pieces[0] = pieces[0][len(delimiter) :]
    fields: dict[str, list[str]] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for piece in pieces:
        if piece.startswith(b"--"):
            break  # the closing delimiter
        if not piece.startswith(b"\r\n"):
            raise HTTPException(400, "malformed multipart body")
        head, sep, content = piece[2:].partition(b"\r\n\r\n")
        if not sep:
            raise HTTPException(400, "malformed multipart part (no header end)")
        headers = {}
        for raw in head.decode("latin-1").split("\r\n"):
            key, _, value = raw.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = _header_params(headers.get("content-disposition", ""))
        name = disposition.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            raise HTTPException(400, "a multipart part has no name")
        filename = disposition.get_param("filename", header="content-disposition")
        if filename is not None:
            files[name] = (str(filename), content)
        else:
            try:
                fields.setdefault(name, []).append(content.decode("utf-8"))
            except UnicodeDecodeError:
                raise HTTPException(400, f"the form field {name!r} is not UTF-8 text") from None
        if len(fields) + len(files) > max_fields:
            raise HTTPException(400, "too many form fields")
    return Form(fields, files)


UPLOAD_DOC = {"requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object"}}}}}
