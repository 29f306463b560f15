"""Multipart uploads streamed to spool files on local disk (chat_server.kb.spool), not memory.

`SpoolingRoute` is the route class of routers that take files: their multipart bodies are
parsed by python-multipart (through Starlette's parser) straight into `SpoolFile`s in
UPLOAD_SPOOL_DIR, each hashed, counted and refused (413) at its first byte over
MAX_UPLOAD_BYTES; a request with more than MAX_UPLOAD_FILES files is refused at the next
file's headers. FastAPI closes the form after the response, which removes the spool files;
a parse error or a client disconnect closes them at once.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import aclosing
from typing import Any

from fastapi import Request, Response, UploadFile
from fastapi.routing import APIRoute
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, Headers
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from chat_server.errors import ServiceError
from chat_server.kb.spool import CHUNK, IncomingFile, SpoolFile, UploadTooLarge
from chat_server.settings import Settings


class SpoolingParser(MultiPartParser):
    """Starlette's multipart parser with each file part written to a capped `SpoolFile`."""

    def __init__(self, *args: Any, settings: Settings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        upload = self._current_part.file
        if upload is None:
            return
        if self._current_files > self.settings.max_upload_files:
            raise UploadTooLarge(
                f"{self._current_files} files in one request; the limit is "
                f"{self.settings.max_upload_files} (MAX_UPLOAD_FILES)"
            )
        # Replace the in-memory spooled file Starlette made (still empty) with a disk one.
        self._files_to_close_on_error.pop().close()
        spool = SpoolFile(
            upload.filename or "", self.settings.upload_spool_dir, self.settings.max_upload_bytes
        )
        self._files_to_close_on_error.append(spool)  # type: ignore[arg-type]
        self._current_part.file = UploadFile(
            file=spool,  # type: ignore[arg-type]
            size=0,
            filename=upload.filename,
            headers=upload.headers,
        )


class SpoolingRequest(Request):
    async def _get_form(
        self,
        *,
        max_files: int | float = 1000,
        max_fields: int | float = 1000,
        max_part_size: int = 1024 * 1024,
    ) -> FormData:
        content_type, _ = parse_options_header(self.headers.get("Content-Type"))
        if self._form is not None or content_type != b"multipart/form-data":
            return await super()._get_form(
                max_files=max_files, max_fields=max_fields, max_part_size=max_part_size
            )
        settings: Settings = self.app.state.settings
        try:
            async with aclosing(self.stream()) as stream:
                parser = SpoolingParser(
                    Headers(scope=self.scope),
                    stream,
                    max_files=max_files,
                    max_fields=max_fields,
                    max_part_size=max_part_size,
                    settings=settings,
                )
                self._form = await parser.parse()
        except MultiPartException as exc:
            raise HTTPException(status_code=400, detail=exc.message) from exc
        return self._form


class SpoolingRoute(APIRoute):
    """A route whose multipart files go to spool files (see the module doc)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def spooling_handler(request: Request) -> Response:
            return await handler(SpoolingRequest(request.scope, request.receive))

        return spooling_handler


async def read_uploads(uploads: list[UploadFile], settings: Settings) -> list[IncomingFile]:
    """The uploads as files to ingest, each in a spool file that the request owns.

    On a `SpoolingRoute` they are spooled already; elsewhere each is copied in chunks into a
    capped spool file that replaces the upload's own file (so closing the form removes it).
    """
    if len(uploads) > settings.max_upload_files:
        raise ServiceError(
            413,
            f"{len(uploads)} files in one request; the limit is {settings.max_upload_files} "
            "(MAX_UPLOAD_FILES)",
        )
    incoming: list[IncomingFile] = []
    for upload in uploads:
        if not isinstance(upload.file, SpoolFile):
            spool = SpoolFile(
                upload.filename or "", settings.upload_spool_dir, settings.max_upload_bytes
            )
            try:
                await upload.seek(0)
                while chunk := await upload.read(CHUNK):
                    await run_in_threadpool(spool.write, chunk)
            except BaseException:
                await run_in_threadpool(spool.close)
                raise
            await upload.close()
            upload.file = spool  # type: ignore[assignment]
        spooled = upload.file
        assert isinstance(spooled, SpoolFile)
        incoming.append(spooled.incoming())
    return incoming
