"""Local sources: folders of HTML or markdown files, and zips of HTML pages."""

from __future__ import annotations

import dataclasses
import logging
import os
import posixpath
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from curation.sources.pages import (
    HTML_SUFFIXES,
    MARKDOWN_SUFFIXES,
    PDF_CONTENT_TYPE,
    PDF_SUFFIXES,
    CrawlOptions,
    ImageLoader,
    ImageUnavailable,
    LoadedImage,
    RawPage,
    SourceError,
    with_data_uris,
)

logger = logging.getLogger("manualqa.sources")


# ---------------------------------------------------------------------------------------------
# Local files


def _is_hidden(part: str) -> bool:
    # Dotfiles (.DS_Store, .git ...) and macOS archive metadata are never manual pages.
    return part.startswith(".") or part == "__MACOSX"


def _list_folder(root: Path, suffixes: tuple[str, ...]) -> list[tuple[str, Path]]:
    """``(relative name, path)`` of matching files under ``root``, sorted by name.

    os.walk (not rglob) so symlinked directories are not followed into loops; symlinked
    files are listed if they point inside ``root`` (a broken one later shows up as an
    unreadable page), and skipped if they point outside it: whatever a folder's links reach
    would be published as a page of the manual (security review M2).
    """
    found: list[tuple[str, Path]] = []
    inside = Path(root).resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [name for name in dirnames if not _is_hidden(name)]
        for filename in filenames:
            if _is_hidden(filename) or not filename.lower().endswith(suffixes):
                continue
            path = Path(dirpath, filename)
            if path.is_symlink() and not path.resolve().is_relative_to(inside):
                logger.warning("%s links outside the folder (to %s); skipped", path, path.resolve())
                continue
            found.append((path.relative_to(root).as_posix(), path))
    found.sort(key=lambda item: item[0])
    return found


def _file_page(name: str, path: Path, content_type: str, max_bytes: int) -> RawPage:
    """Read one local file into a RawPage, turning any failure into an error page."""
    url = path.absolute().as_uri()

    def failed(error: str) -> RawPage:
        logger.warning("%s: %s", path, error)
        return RawPage(name, url, None, content_type, None, error)

    try:
        size = path.stat().st_size
        if size > max_bytes:
            return failed(f"too large: {size} bytes > limit {max_bytes}")
        content = path.read_bytes()
    except OSError as exc:
        return failed(f"unreadable: {exc.strerror or exc}")
    if len(content) > max_bytes:  # the file grew between stat() and read()
        return failed(f"too large: {len(content)} bytes > limit {max_bytes}")
    return RawPage(name, url, content, content_type, None, None)


def _require_dir(path: Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise SourceError(f"not a directory: {path}")
    return path


def _iter_files(
    files: list[tuple[str, Path]], content_type: str, max_bytes: int
) -> Iterator[RawPage]:
    for name, path in files:
        yield _file_page(name, path, content_type, max_bytes)


def iter_html_folder(
    path: Path,
    *,
    max_bytes: int = CrawlOptions.max_bytes,
    max_image_bytes: int = CrawlOptions.max_image_bytes,
) -> Iterator[RawPage]:
    """Pages of a local folder of ``.html``/``.htm`` files (recursive, sorted by path).

    For manuals saved with a browser or exported by a vendor. Hidden files and folders are
    skipped. Raises :class:`SourceError` at once if ``path`` is not a directory. Each page
    reads its images from the folder (:func:`_folder_images`).
    """
    root = _require_dir(path)
    return _with_folder_images(root, _list_folder(root, HTML_SUFFIXES), max_bytes, max_image_bytes)


def _with_folder_images(
    root: Path, files: list[tuple[str, Path]], max_bytes: int, max_image_bytes: int
) -> Iterator[RawPage]:
    for page in _iter_files(files, "text/html", max_bytes):
        images = _folder_images(root, root / page.source_name, max_image_bytes)
        yield dataclasses.replace(page, load_image=with_data_uris(images, max_image_bytes))


def _local_image_path(src: str, page_dir: str) -> str:
    """The path, relative to the source's root and with "/" separators, that an ``<img src>``
    of a page in ``page_dir`` names ("/x" from the root); raises ImageUnavailable for an image
    elsewhere: on a web site (a local source reads its own files only), above the root, or in a
    hidden folder."""
    parts = urlsplit(src.strip())
    if parts.scheme or parts.netloc:
        raise ImageUnavailable(
            "not in the source: a folder or zip reads its own files only, not web addresses"
        )
    wanted = unquote(parts.path).replace("\\", "/")
    if not wanted:
        raise ImageUnavailable("no image path")
    joined = wanted.lstrip("/") if wanted.startswith("/") else posixpath.join(page_dir, wanted)
    relative = posixpath.normpath(joined)
    if relative in {".", ".."} or relative.startswith(("../", "/")):
        raise ImageUnavailable("outside the source")
    if any(_is_hidden(part) for part in relative.split("/")):
        raise ImageUnavailable("in a hidden folder or file")
    return relative


def _folder_images(root: Path, page: Path, max_bytes: int) -> ImageLoader:
    """Reads a page's images from the folder, relative to the page (or to the folder with a
    leading "/"), never outside the folder: checked again once symlinks are resolved."""
    inside = root.resolve()
    page_dir = page.parent.relative_to(root).as_posix()

    def load(src: str) -> LoadedImage:
        relative = _local_image_path(src, "" if page_dir == "." else page_dir)
        path = (root / relative).resolve()
        if not path.is_relative_to(inside):
            raise ImageUnavailable("a link to outside the source")
        try:
            if not path.is_file():
                raise ImageUnavailable(f"not found: {relative}")
            size = path.stat().st_size
            if size > max_bytes:
                raise ImageUnavailable(f"too large: {size} bytes > limit {max_bytes}")
            with path.open("rb") as handle:
                data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise ImageUnavailable(f"unreadable: {exc.strerror or exc}") from None
        if len(data) > max_bytes:  # the file grew since stat()
            raise ImageUnavailable(f"too large: more than {max_bytes} bytes")
        return LoadedImage(data, path.as_uri())

    return load


def iter_markdown_folder(
    path: Path, *, max_bytes: int = CrawlOptions.max_bytes
) -> Iterator[RawPage]:
    """Pages of a folder of ``.md`` files (recursive, sorted), e.g. an already-cleaned manual."""
    root = _require_dir(path)
    return _iter_files(_list_folder(root, MARKDOWN_SUFFIXES), "text/markdown", max_bytes)


def _zip_members(path: Path) -> list[str]:
    """Names of the HTML pages in a zip, sorted; raises SourceError for a bad archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise SourceError(f"not a readable zip archive: {path} ({exc})") from exc
    names: set[str] = set()
    for info in infos:
        if info.is_dir():
            continue
        parts = info.filename.replace("\\", "/").split("/")
        if any(_is_hidden(part) or part == ".." for part in parts if part):
            continue
        if info.filename.lower().endswith(HTML_SUFFIXES + PDF_SUFFIXES):
            names.add(info.filename)
    return sorted(names)


def _zip_pages(
    path: Path,
    members: list[str],
    max_bytes: int,
    max_pdf_bytes: int = CrawlOptions.max_pdf_bytes,
    max_image_bytes: int = CrawlOptions.max_image_bytes,
) -> Iterator[RawPage]:
    base = path.absolute().as_uri()
    with zipfile.ZipFile(path) as archive:
        by_name = _zip_files_by_name(archive)
        for member in members:
            name = member.replace("\\", "/").lstrip("/")
            # "jar:"-style URL: where the page came from, readable by a human.
            url = f"{base}!/{name}"
            error: str | None = None
            content: bytes | None = None
            is_pdf = name.lower().endswith(PDF_SUFFIXES)
            content_type = PDF_CONTENT_TYPE if is_pdf else "text/html"
            limit = max_pdf_bytes if is_pdf else max_bytes
            try:
                info = archive.getinfo(member)
                if info.file_size > limit:
                    error = f"too large: {info.file_size} bytes > limit {limit}"
                else:
                    # Read one byte past the limit: the header's size can lie (zip bombs).
                    with archive.open(info) as handle:
                        content = handle.read(limit + 1)
                    if len(content) > limit:
                        error = f"too large: at least {len(content)} bytes > limit {limit}"
                        content = None
            except (
                OSError,
                EOFError,
                zipfile.BadZipFile,
                zlib.error,
                RuntimeError,  # encrypted member
                NotImplementedError,  # unsupported compression method
            ) as exc:
                error = f"unreadable: {exc}"
                content = None
            if error is not None:
                logger.warning("%s: %s", url, error)
            images = None if is_pdf else _zip_images(archive, by_name, name, base, max_image_bytes)
            yield RawPage(
                name,
                url,
                content,
                content_type,
                None,
                error,
                load_image=None if is_pdf else with_data_uris(images, max_image_bytes),
            )


#: What reading a zip member may raise (an encrypted member: RuntimeError; an unsupported
#: compression method: NotImplementedError; a closed archive: ValueError).
_ZIP_READ_ERRORS = (
    ValueError,  # the archive was closed: the source has moved on to other pages
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    RuntimeError,
    NotImplementedError,
)


def _zip_files_by_name(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's files by their name with "/" separators and no leading "/"."""
    return {
        info.filename.replace("\\", "/").lstrip("/"): info
        for info in archive.infolist()
        if not info.is_dir()
    }


def _zip_images(
    archive: zipfile.ZipFile,
    by_name: dict[str, zipfile.ZipInfo],
    page: str,
    archive_url: str,
    max_bytes: int,
) -> ImageLoader:
    """Reads a page's images from the zip's members, relative to the page (or to the
    archive's root with a leading "/"); nothing outside the archive can be named."""
    page_dir = posixpath.dirname(page)

    def load(src: str) -> LoadedImage:
        relative = _local_image_path(src, page_dir)
        info = by_name.get(relative)
        if info is None:
            raise ImageUnavailable(f"not found: {relative}")
        if info.file_size > max_bytes:
            raise ImageUnavailable(f"too large: {info.file_size} bytes > limit {max_bytes}")
        try:
            # One byte past the limit: the header's size can lie (zip bombs).
            with archive.open(info) as handle:
                data = handle.read(max_bytes + 1)
        except _ZIP_READ_ERRORS as exc:
            raise ImageUnavailable(f"unreadable: {exc}") from None
        if len(data) > max_bytes:
            raise ImageUnavailable(f"too large: more than {max_bytes} bytes")
        return LoadedImage(data, f"{archive_url}!/{relative}")

    return load


def iter_pdf_files(
    files: list[tuple[str, Path]], *, max_bytes: int = CrawlOptions.max_pdf_bytes
) -> Iterator[RawPage]:
    """The PDFs ``files`` names (``(name, path)``), each one RawPage of the whole file."""
    return _iter_files(files, PDF_CONTENT_TYPE, max_bytes)


def iter_html_zip(
    path: Path,
    *,
    max_bytes: int = CrawlOptions.max_bytes,
    max_pdf_bytes: int = CrawlOptions.max_pdf_bytes,
    max_image_bytes: int = CrawlOptions.max_image_bytes,
) -> Iterator[RawPage]:
    """Pages of a ``.zip`` of HTML files and PDFs (recursive, sorted by member name).

    Directories, ``__MACOSX`` metadata and dotfiles are ignored. The archive is checked at
    once (raising :class:`SourceError`); members are read lazily, one at a time. An HTML page
    reads its images from the archive's members.
    """
    path = Path(path)
    members = _zip_members(path)
    return _zip_pages(path, members, max_bytes, max_pdf_bytes, max_image_bytes)
