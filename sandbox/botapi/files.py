"""Files: photos and documents both ways, ``getFile`` and downloads.

Telegram keeps a photo as several ``PhotoSize`` entries (here a thumbnail and the
full size, each with its own ``file_id``); a document keeps its ``file_name`` and
``mime_type``. A URL given instead of a file is downloaded, as Telegram does (within
its size limits), and refused as Telegram refuses it when it cannot be.
"""

from __future__ import annotations

import copy
import io
import mimetypes
import secrets
import struct
import zlib
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from .messages import Messages
from .protocol import CAPTION_LIMIT, ApiError, JsonDict, bad
from .records import StoredFile, Upload

# what Telegram downloads itself when a bot sends a URL (Bot API, "Sending files"):
# photos up to 5 MB, other files up to 20 MB
URL_LIMITS = {"photo": 5 * 1024 * 1024, "document": 20 * 1024 * 1024}
URL_TIMEOUT = aiohttp.ClientTimeout(total=10)


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid solid-colour PNG, used as the default content of user photos."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Pixel size of an image, or ``None`` if it is not a readable image.

    Uses Pillow when it is installed (it is a project dependency); otherwise only
    PNG headers are understood and anything else is assumed to be a 1280x960 image.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - Pillow is a project dependency
        if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
            width, height = struct.unpack(">II", data[16:24])
            return int(width), int(height)
        return 1280, 960
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _scaled(size: tuple[int, int], longest: int) -> tuple[int, int]:
    width, height = size
    factor = min(1.0, longest / max(width, height, 1))
    return max(1, round(width * factor)), max(1, round(height * factor))


class Files(Messages):
    """Photos and documents (sent by people or by the bot), ``getFile``, downloads."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._files: dict[str, StoredFile] = {}
        self._file_counter = 0

    # ------------------------------------------------------------------ acting as people

    def send_photo(
        self,
        chat_id: int,
        user_id: int,
        *,
        data: bytes | None = None,
        caption: str | None = None,
    ) -> JsonDict:
        """The user sends a photo (a generated PNG unless ``data`` is given).

        The message carries two ``PhotoSize`` entries (thumbnail and full size),
        each with its own ``file_id``; both download as ``data``.
        """
        chat, user = self._acting(chat_id, user_id)
        if data is None:
            shade = (self._file_counter * 37) % 256
            data = _png(64, 48, (shade, 128, 255 - shade))
        content: JsonDict = {"photo": self._store_photo(data)}
        if caption:
            content["caption"] = caption
        return self._user_message(chat, user, content)

    def send_document(
        self, chat_id: int, user_id: int, data: bytes, file_name: str, mime_type: str
    ) -> JsonDict:
        """The user sends a file as a document."""
        chat, user = self._acting(chat_id, user_id)
        stored = self._store_file("document", data, file_name=file_name, mime_type=mime_type)
        return self._user_message(chat, user, {"document": self._document_dict(stored)})

    # ------------------------------------------------------------------ inspection

    def file_bytes(self, file_id: str) -> bytes:
        """Content of a stored file (uploaded by the bot or sent by a user)."""
        stored = self._files.get(file_id)
        if stored is None:
            raise KeyError(f"unknown file_id {file_id!r}")
        return stored.data

    def store_photo(self, data: bytes) -> list[JsonDict]:
        """Store an image as Telegram stores a photo; returns its ``PhotoSize`` list.

        For data prepared outside a chat (a sandbox's demo listings): the bot can send
        it by the ``file_id`` of the last (largest) size.
        """
        size = _image_size(data)
        if size is None:
            raise ValueError("not an image")
        return self._store_photo(data, size)

    def file_info(self, file_id: str) -> tuple[bytes, str]:
        """Content and MIME type of a stored file."""
        stored = self._files.get(file_id)
        if stored is None:
            raise KeyError(f"unknown file_id {file_id!r}")
        return stored.data, stored.mime_type or "application/octet-stream"

    def file_name(self, file_id: str) -> str | None:
        """The file name a stored document was sent with (None for photos)."""
        stored = self._files.get(file_id)
        if stored is None:
            raise KeyError(f"unknown file_id {file_id!r}")
        return stored.file_name

    # ------------------------------------------------------------------ Bot API methods

    async def _send_photo(self, params: JsonDict) -> JsonDict:
        chat = self._target_chat(params)
        caption, entities = self._formatted(params, "caption", "caption_entities", CAPTION_LIMIT)
        photo = params.get("photo")
        if _is_url(photo):
            photo = await _download(str(photo), URL_LIMITS["photo"])
            if _image_size(photo.data) is None:
                raise bad("wrong type of the web page content")
        if isinstance(photo, Upload):
            size = _image_size(photo.data)
            if size is None:
                raise bad("IMAGE_PROCESS_FAILED")
            sizes = self._store_photo(photo.data, size)
        elif isinstance(photo, str) and photo:
            stored = self._existing_file(photo, "photo")
            assert stored.photo is not None  # stored by _store_photo, with its sizes
            sizes = copy.deepcopy(stored.photo)
        else:
            raise bad("there is no photo in the request")
        content = {"photo": sizes, "caption": caption, "caption_entities": entities}
        return self._bot_send(params, content, chat)

    async def _send_document(self, params: JsonDict) -> JsonDict:
        chat = self._target_chat(params)
        caption, entities = self._formatted(params, "caption", "caption_entities", CAPTION_LIMIT)
        document = params.get("document")
        if _is_url(document):
            document = await _download(str(document), URL_LIMITS["document"])
        if isinstance(document, Upload):
            guessed = mimetypes.guess_type(document.filename)[0]
            stored = self._store_file(
                "document",
                document.data,
                file_name=document.filename,
                mime_type=guessed or document.content_type or "application/octet-stream",
            )
        elif isinstance(document, str) and document:
            stored = self._existing_file(document, "document")
        else:
            raise bad("there is no document in the request")
        content = {
            "document": self._document_dict(stored),
            "caption": caption,
            "caption_entities": entities,
        }
        return self._bot_send(params, content, chat)

    def _get_file(self, params: JsonDict) -> JsonDict:
        stored = self._files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise bad("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    def _download(self, token: str, path: str) -> web.Response:
        if token != self.token:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        for stored in self._files.values():
            if stored.file_path == path:
                return web.Response(
                    body=stored.data, content_type=stored.mime_type or "application/octet-stream"
                )
        return web.json_response(ApiError(404, "Not Found").body(), status=404)

    # ------------------------------------------------------------------ storage

    def _store_file(
        self,
        kind: str,
        data: bytes,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        extension: str = "",
    ) -> StoredFile:
        self._file_counter += 1
        n = self._file_counter
        prefix = "AgAC" if kind == "photo" else "BQAC"
        folder = "photos" if kind == "photo" else "documents"
        if not extension and file_name and "." in file_name:
            extension = "." + file_name.rsplit(".", 1)[1]
        stored = StoredFile(
            file_id=f"{prefix}AgIAAxkBAAI{n:05d}{secrets.token_urlsafe(12)}",
            file_unique_id=f"AQAD{n:05d}{secrets.token_hex(3)}",
            kind=kind,
            data=data,
            file_path=f"{folder}/file_{n}{extension}",
            file_name=file_name,
            mime_type=mime_type,
        )
        self._files[stored.file_id] = stored
        return stored

    def _store_photo(self, data: bytes, size: tuple[int, int] | None = None) -> list[JsonDict]:
        """Store a photo as Telegram does: a thumbnail and a full size, each a file."""
        size = size or _image_size(data) or (1280, 960)
        sizes: list[JsonDict] = []
        files = []
        for longest in (90, 1280):
            width, height = _scaled(size, longest)
            stored = self._store_file("photo", data, mime_type="image/jpeg", extension=".jpg")
            files.append(stored)
            sizes.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "file_size": len(data),
                    "width": width,
                    "height": height,
                }
            )
        for stored in files:
            stored.photo = sizes
        return copy.deepcopy(sizes)

    @staticmethod
    def _document_dict(stored: StoredFile) -> JsonDict:
        document: JsonDict = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
        }
        if stored.file_name:
            document["file_name"] = stored.file_name
        if stored.mime_type:
            document["mime_type"] = stored.mime_type
        return document

    def _existing_file(self, value: str, kind: str) -> StoredFile:
        stored = self._files.get(value)
        if stored is None:
            raise bad("wrong file identifier/HTTP URL specified")
        if stored.kind != kind:
            raise bad("type of file mismatch")
        return stored


def _is_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


async def _download(url: str, limit: int) -> Upload:
    """What Telegram would fetch for a URL sent as a file; a URL it could not fetch
    (unreachable, not 200, larger than ``limit``) is refused with its answer."""
    failed = bad("failed to get HTTP URL content")
    try:
        async with (
            aiohttp.ClientSession(timeout=URL_TIMEOUT) as session,
            session.get(url) as response,
        ):
            if response.status != 200 or (response.content_length or 0) > limit:
                raise failed
            data = bytearray()
            async for chunk in response.content.iter_chunked(65536):
                data += chunk
                if len(data) > limit:
                    raise failed
            content_type = response.content_type
    except (TimeoutError, aiohttp.ClientError, ValueError):
        raise failed from None
    name = urlsplit(url).path.rsplit("/", 1)[-1] or "file"
    return Upload(filename=name, content_type=content_type, data=bytes(data))
