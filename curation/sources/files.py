"""Local sources: folders of HTML or markdown files, and zips of HTML pages."""

from __future__ import annotations

import logging
import os
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from curation.sources.pages import (
    HTML_SUFFIXES,
    MARKDOWN_SUFFIXES,
    CrawlOptions,
    RawPage,
    SourceError,
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


def iter_html_folder(path: Path, *, max_bytes: int = CrawlOptions.max_bytes) -> Iterator[RawPage]:
    """Pages of a local folder of ``.html``/``.htm`` files (recursive, sorted by path).

    For manuals saved with a browser or exported by a vendor. Hidden files and folders are
    skipped. Raises :class:`SourceError` at once if ``path`` is not a directory.
    """
    root = _require_dir(path)
    return _iter_files(_list_folder(root, HTML_SUFFIXES), "text/html", max_bytes)


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
        if info.filename.lower().endswith(HTML_SUFFIXES):
            names.add(info.filename)
    return sorted(names)


def _zip_pages(path: Path, members: list[str], max_bytes: int) -> Iterator[RawPage]:
    base = path.absolute().as_uri()
    with zipfile.ZipFile(path) as archive:
        for member in members:
            name = member.replace("\\", "/").lstrip("/")
            # "jar:"-style URL: where the page came from, readable by a human.
            url = f"{base}!/{name}"
            error: str | None = None
            content: bytes | None = None
            try:
                info = archive.getinfo(member)
                if info.file_size > max_bytes:
                    error = f"too large: {info.file_size} bytes > limit {max_bytes}"
                else:
                    # Read one byte past the limit: the header's size can lie (zip bombs).
                    with archive.open(info) as handle:
                        content = handle.read(max_bytes + 1)
                    if len(content) > max_bytes:
                        error = f"too large: at least {len(content)} bytes > limit {max_bytes}"
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
            yield RawPage(name, url, content, "text/html", None, error)


def iter_html_zip(path: Path, *, max_bytes: int = CrawlOptions.max_bytes) -> Iterator[RawPage]:
    """Pages of a ``.zip`` of HTML files (recursive, sorted by member name).

    Directories, ``__MACOSX`` metadata and dotfiles are ignored. The archive is checked at
    once (raising :class:`SourceError`); members are read lazily, one at a time.
    """
    path = Path(path)
    members = _zip_members(path)
    return _zip_pages(path, members, max_bytes)
