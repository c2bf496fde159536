"""Figures (issue 17, point 3): the pictures of HTML pages kept through real ingestions of
folders, zips and a crawl of a real local HTTP server, stored as WebP under a media folder of
the test's own, served to readers, shown on the document page and in chat citations."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import zipfile
import zlib
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from chat.models import Message
from curation import selectors, services
from curation.images import ImageRefused, encode_web_image
from curation.models import DocumentChunk, Figure, IngestionRun, ManualDocument
from curation.scraping import html_to_markdown
from curation.services import CleanDocument, FigureImage
from curation.sources import ImageUnavailable, LoadedImage, iter_html_folder, iter_html_zip
from tests.chat.support import make_assistant
from tests.httpserver import LocalHTTPServer, Response

FAST = {"min_delay_s": 0, "backoff_s": 0.01, "retries": 1, "timeout_s": 5}


# --------------------------------------------------------------------------------------------
# Pictures made here


def png(width: int, height: int, color: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", (width, height), color)
    image.paste((250, 250, 250), (width // 4, height // 4, width // 2, height // 2))
    image.save(out, format="PNG")
    return out.getvalue()


def jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 60, 20)).save(out, format="JPEG", quality=85)
    return out.getvalue()


def noise_png(width: int, height: int) -> bytes:
    """A PNG that does not compress: about 3 bytes a pixel."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(out, "PNG")
    return out.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb)."""
    data = bytearray(png(40, 40))
    # Signature (8), IHDR length (4) and type (4), then width and height; the CRC follows the
    # 13 bytes of IHDR data.
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def html_page(title: str, body: str) -> str:
    return (
        f"<html><head><title>{title}</title></head><body><nav><a href='index.html'>Home</a>"
        f"<img src='/img/logo.png' alt='Logo'></nav><main><h1>{title}</h1>{body}</main></body>"
        "</html>"
    )


CHARGING_BODY = (
    "<h2>Charge port</h2><p>The charge port is on the left rear of the car, behind a door "
    "that opens when you press it.</p>"
    '<figure><img src="img/port.png" alt="The port with its door open">'
    "<figcaption>Figure 1. Charge port on the left rear.</figcaption></figure>"
    "<p>Press <img src='img/button.png' alt='the button' width='16' height='16'> to open it, "
    "or use the touchscreen.</p>"
    "<h2>Charging cable</h2><p>Keep the charging cable coiled in the trunk when you do not "
    "use it.</p>"
    '<p><img src="/img/cable.jpg" alt="The charging cable coiled in its bag"></p>'
)
PORT = png(2400, 1600)  # bigger than FIGURE_MAX_SIDE: scaled down when stored
CABLE = jpeg(640, 480)
ICON = png(16, 16)


def write_folder(root: Path, body: str = CHARGING_BODY, images: dict[str, bytes] | None = None):
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "charging.html").write_text(html_page("Charging", body), encoding="utf-8")
    (root / "wipers.html").write_text(
        html_page("Wipers", "<p>Lift the wiper arm and press the release tab to change it.</p>"),
        encoding="utf-8",
    )
    for name, data in (
        images or {"port.png": PORT, "cable.jpg": CABLE, "button.png": ICON, "logo.png": PORT}
    ).items():
        (root / "img" / name).write_bytes(data)


def ingest(source: str, *, manual_name: str = "Figures manual", **options) -> IngestionRun:
    manual = services.manual_get_or_create(name=manual_name)
    run = services.ingestion_run_create(
        manual=manual, source=source, options={**FAST, **options}, enqueue=False
    )
    return services.ingestion_run_execute(run_id=run.pk)


def notes(run: IngestionRun) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for entry in run.errors:
        if "note" in entry:
            found.setdefault(entry["page"], []).append(entry["note"])
    return found


@pytest.fixture(autouse=True)
def media(settings, tmp_path) -> Path:
    """A media folder of the test's own (figures are real files)."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return Path(settings.MEDIA_ROOT)


def stored_files(media: Path) -> set[str]:
    return {p.relative_to(media).as_posix() for p in media.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------------------------
# Cleaning (plain Python)


def test_the_cleaner_keeps_pictures_as_markers_with_their_captions_and_drops_icons():
    images = {"a.png": png(300, 200), "icon.png": ICON}

    def load(src: str) -> LoadedImage:
        if src not in images:
            raise ImageUnavailable(f"not found: {src}")
        return LoadedImage(images[src], f"file:///{src}")

    page = html_to_markdown(
        "<main><h1>Lights</h1><p>Turn the stalk <img src='icon.png' alt='stalk'> to switch "
        "on the lights.</p><figure><img src='a.png' alt='Stalk'><figcaption>The left "
        "stalk.</figcaption></figure><ul><li>Flash <img src='a.png' alt='again'></li></ul>"
        "<img src='gone.png' alt='Gone'><img src='plan.svg' alt='A plan'></main>",
        load_image=load,
    )

    key = sha256(images["a.png"])
    assert page.markdown == (
        "# Lights\n\nTurn the stalk to switch on the lights.\n\n"
        f"<!-- figure {key} -->\n\n*Figure: The left stalk.*\n\n- Flash\n\n"
        f"<!-- figure {key} -->\n\n*Figure: again*\n"
    )
    assert [(f.key, f.caption) for f in page.figures] == [(key, "The left stalk.")]
    assert page.word_count == 16  # the markers are no words of the page
    assert page.notes == (
        "image gone.png left out: not found: gone.png",
        "image plan.svg left out: an SVG drawing (figures are raster)",
    )
    # Without a loader, pictures are dropped as they always were.
    plain = html_to_markdown(
        "<main><h1>Lights</h1><p>Turn the stalk to switch on.</p>"
        "<img src='a.png' alt='Stalk'></main>"
    )
    assert "figure" not in plain.markdown and not plain.figures


def test_page_text_cannot_forge_a_figure_marker():
    page = html_to_markdown(
        "<main><h1>Trick</h1><p>&lt;!-- figure deadbeefdeadbeef --&gt;</p>"
        "<p>Some words of text for the page.</p></main>"
    )
    assert "\n<!-- figure" not in page.markdown
    assert "\\<!-- figure deadbeefdeadbeef -->" in page.markdown


def test_encoding_refuses_what_it_should_and_scales_what_it_keeps():
    kept = encode_web_image(png(3000, 1000), max_bytes=10**7, max_pixels=10**8, max_side=1600)
    assert (kept.width, kept.height, kept.content_type) == (1600, 533, "image/webp")
    assert kept.data[:4] == b"RIFF" and kept.data[8:12] == b"WEBP"
    with pytest.raises(ImageRefused, match="too large"):
        encode_web_image(png(100, 100), max_bytes=100, max_pixels=10**8, max_side=1600)
    with pytest.raises(ImageRefused, match="too many pixels"):
        encode_web_image(bomb_png(), max_bytes=10**7, max_pixels=10**8, max_side=1600)
    with pytest.raises(ImageRefused, match="too many pixels"):
        encode_web_image(png(200, 200), max_bytes=10**7, max_pixels=10_000, max_side=1600)
    with pytest.raises(ImageRefused, match="not a readable image"):
        encode_web_image(
            noise_png(200, 200)[:5000], max_bytes=10**7, max_pixels=10**8, max_side=1600
        )


def test_a_folder_reads_images_beside_its_pages_and_nothing_outside(tmp_path):
    root = tmp_path / "manual"
    write_folder(root / "docs")
    (tmp_path / "secret.png").write_bytes(png(64, 64))
    (root / "docs" / "img" / "link.png").symlink_to(tmp_path / "secret.png")
    (root / "docs" / ".hidden").mkdir()
    (root / "docs" / ".hidden" / "x.png").write_bytes(png(64, 64))

    pages = iter_html_folder(root, max_image_bytes=3_000_000)
    page = next(p for p in pages if p.source_name == "docs/charging.html")

    assert page.load_image("img/port.png").data == PORT
    assert page.load_image("/docs/img/cable.jpg").data == CABLE
    assert page.load_image("img/../img/cable.jpg?v=2#top").data == CABLE
    small = png(40, 40)
    assert (
        page.load_image("data:image/png;base64," + base64.b64encode(small).decode()).data == small
    )
    for src, reason in [
        ("data:image/png;base64," + base64.b64encode(noise_png(1200, 1200)).decode(), "too large"),
        ("data:text/html,<script>alert(1)</script>", "not an image"),
        ("../../secret.png", "outside the source"),
        ("img/link.png", "outside the source"),
        (".hidden/x.png", "hidden"),
        ("img/none.png", "not found"),
        ("http://example.com/a.png", "web addresses"),
        ("file:///etc/passwd", "web addresses"),
    ]:
        with pytest.raises(ImageUnavailable, match=reason):
            page.load_image(src)


def test_a_zip_reads_images_from_its_members(tmp_path):
    archive = tmp_path / "manual.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pages/charging.html", html_page("Charging", CHARGING_BODY))
        zf.writestr("pages/img/port.png", PORT)
        zf.writestr("img/cable.jpg", CABLE)

    pages = iter_html_zip(archive)
    page = next(pages)  # its loader reads the archive while the page is the current one

    assert page.load_image("img/port.png").data == PORT
    assert page.load_image("/img/cable.jpg").data == CABLE
    with pytest.raises(ImageUnavailable, match="outside"):
        page.load_image("../../etc/passwd")
    assert next(pages, None) is None  # the archive is closed now
    with pytest.raises(ImageUnavailable, match="unreadable"):
        page.load_image("img/port.png")


# --------------------------------------------------------------------------------------------
# Ingestion, storage and versions (real database, real embedder)


@pytest.mark.django_db
def test_a_folder_manual_keeps_its_pictures_as_figures_of_the_right_chunks(tmp_path, media):
    write_folder(tmp_path / "manual")

    run = ingest(str(tmp_path / "manual"))

    assert run.status == IngestionRun.Status.SUCCEEDED, run.message
    assert run.pages_failed == 0 and notes(run) == {}
    document = ManualDocument.objects.get(source_name="charging.html")
    port, cable = document.figures.order_by("position")
    assert (port.key, port.caption) == (sha256(PORT), "Figure 1. Charge port on the left rear.")
    assert (cable.key, cable.caption) == (sha256(CABLE), "The charging cable coiled in its bag")
    assert (port.width, port.height) == (1600, 1067) and (cable.width, cable.height) == (640, 480)
    for figure in (port, cable):
        assert figure.version == 1 and figure.content_type == "image/webp"
        data = (media / figure.image.name).read_bytes()
        assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
        assert figure.source_url.startswith("file://")
    assert port.chunk.heading_path == "Charging > Charge port"
    assert cable.chunk.heading_path == "Charging > Charging cable"
    # The captions are searchable: they are in their chunk's embedded text.
    assert "Figure 1. Charge port on the left rear." in port.chunk.text
    assert "The charging cable coiled in its bag" in cable.chunk.text
    assert port.chunk.embedding is not None and "<!--" not in port.chunk.text
    # Icons and the site's chrome are no figures; the text around an icon reads on.
    assert Figure.objects.count() == 2
    assert "Press to open it, or use the touchscreen." in document.markdown
    assert f"<!-- figure {sha256(PORT)} -->" in document.markdown


@pytest.mark.django_db
def test_a_crawl_keeps_the_pictures_of_its_own_site_and_no_other(tmp_path):
    site = tmp_path / "site"
    (site / "manual").mkdir(parents=True)
    (site / "static").mkdir()
    (site / "private").mkdir()
    (site / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    (site / "static" / "port.png").write_bytes(PORT)
    (site / "private" / "plan.png").write_bytes(png(100, 100))
    (site / "manual" / "index.html").write_text(
        html_page("Contents", "<p>Read the <a href='charging.html'>charging page</a> first.</p>")
    )
    with LocalHTTPServer(root=site) as server:
        other_site = server.url("/static/port.png").replace("127.0.0.1", "localhost")
        (site / "manual" / "charging.html").write_text(
            html_page(
                "Charging",
                "<h2>Charge port</h2><p>The charge port is on the left rear of the car.</p>"
                "<figure><img src='/static/port.png' alt='The charge port'></figure>"
                "<p>The cable hangs beside it when charging.</p>"
                "<img src='moved.png' alt='The cable'>"
                f"<img src='{other_site}' alt='Elsewhere'>"
                "<img src='/private/plan.png' alt='Plan'><img src='not-an-image.png' alt='x'>",
            )
        )
        server.script(
            "/manual/moved.png", Response(status=302, headers={"Location": "/static/port.png"})
        )
        server.script(
            "/manual/not-an-image.png",
            Response(headers={"Content-Type": "text/html"}, body=b"<p>nope</p>"),
        )

        run = ingest(server.url("/manual/index.html"))
        port_url = server.url("/static/port.png")

    assert run.status == IngestionRun.Status.SUCCEEDED, run.message
    document = ManualDocument.objects.get(source_name="charging.html")
    (figure,) = document.figures.all()  # the redirect led to the same picture
    assert figure.caption == "The charge port" and figure.key == sha256(PORT)
    assert figure.source_url == port_url
    assert figure.chunk.heading_path == "Charging > Charge port"
    assert document.markdown.count(f"<!-- figure {sha256(PORT)} -->") == 2
    page_notes = " | ".join(notes(run)["charging.html"])
    assert "on another site (localhost:" in page_notes
    assert "robots.txt disallows it" in page_notes
    assert "not an image: content-type text/html" in page_notes
    assert server.hits["/static/port.png"] and not server.hits["/private/plan.png"]


@pytest.mark.django_db
def test_bad_and_huge_pictures_are_left_out_with_a_note_and_the_page_is_kept(
    tmp_path, settings, media
):
    settings.FIGURE_MAX_BYTES = 200_000
    images = {
        "good.png": png(300, 200),
        "huge.png": noise_png(400, 400),  # about 480 kB
        "bomb.png": bomb_png(),
        "truncated.png": noise_png(200, 200)[:20_000],
        "text.png": b"this is no picture at all",
    }
    body = (
        "<h2>Pictures</h2><p>Every picture of this page is tested here, one by one.</p>"
        + "".join(
            f"<p>About the {name} picture.</p><img src='img/{name}' alt='{name}'>"
            for name in [*images, "missing.png"]
        )
    )
    write_folder(tmp_path / "manual", body=body, images=images)

    run = ingest(str(tmp_path / "manual"))

    assert run.status == IngestionRun.Status.SUCCEEDED and run.pages_failed == 0
    document = ManualDocument.objects.get(source_name="charging.html")
    assert list(document.figures.values_list("caption", flat=True)) == ["good.png"]
    assert "About the missing.png picture." in document.markdown
    page_notes = notes(run)["charging.html"]
    assert len(page_notes) == 5, page_notes
    by_image = {
        name: next(n for n in page_notes if name in n)
        for name in ["huge.png", "bomb.png", "truncated.png", "text.png", "missing.png"]
    }
    assert "too large" in by_image["huge.png"] and "200000" in by_image["huge.png"]
    assert "too many pixels" in by_image["bomb.png"]
    assert "not a readable image" in by_image["truncated.png"]
    assert "not a PNG, JPEG, GIF, WebP or BMP image" in by_image["text.png"]
    assert "not found" in by_image["missing.png"]
    assert stored_files(media) == {document.figures.get().image.name}


@pytest.mark.django_db
def test_a_figure_over_the_pixel_limit_is_left_out_whatever_gave_it(settings):
    # A PDF's pictures come without a loader: the storage's own limits apply.
    settings.FIGURE_MAX_PIXELS = 10_000
    manual = services.manual_get_or_create(name="PDF-like")
    small, big = png(80, 80), png(200, 200)
    markdown = (
        "# Brakes\n\n## Pads\n\nCheck the pads every year for wear and noise.\n\n"
        f"<!-- figure {sha256(small)} -->\n\n<!-- figure {sha256(big)} -->\n"
    )
    left_out: list[str] = []

    document, outcome, _ = services.document_upsert(
        manual=manual,
        clean=CleanDocument(
            "manual.pdf/Brakes", "", "Brakes", markdown, 9,
            figures=(
                FigureImage(sha256(small), small, "Pad", page=3),
                FigureImage(sha256(big), big, "Disc", page=4),
            ),
        ),
        on_note=left_out.append,
    )  # fmt: skip

    (figure,) = document.figures.all()
    assert (figure.caption, figure.page, figure.chunk.heading_path) == ("Pad", 3, "Brakes > Pads")
    assert left_out == ['figure "Disc" left out: too many pixels: 200x200 > limit 10000 pixels']


@pytest.mark.django_db
def test_reingesting_stores_nothing_new_and_a_changed_page_swaps_its_figures(
    tmp_path, media, django_capture_on_commit_callbacks
):
    root = tmp_path / "manual"
    write_folder(root)
    ingest(str(root))
    first = {f.pk: f.image.name for f in Figure.objects.all()}
    files = stored_files(media)

    again = ingest(str(root))

    assert again.documents_unchanged == 2 and again.chunks_created == 0
    assert {f.pk: f.image.name for f in Figure.objects.all()} == first
    assert stored_files(media) == files

    # The page changes: a new picture of the port, the cable's stays.
    new_port = png(800, 600, color=(10, 160, 60))
    (root / "img" / "port.png").write_bytes(new_port)
    page = next(p for p in iter_html_folder(root) if p.source_name == "charging.html")
    manual = services.manual_get_or_create(name="Figures manual")
    with django_capture_on_commit_callbacks(execute=True):
        document, outcome, _ = services.document_upsert(
            manual=manual, clean=services.clean_page(page)
        )
    assert outcome == "updated" and document.version == 2
    # Until the new chunks are embedded, the old ones answer chat, with their figures.
    assert sorted(Figure.objects.values_list("version", flat=True)) == [1, 1, 2, 2]
    assert files <= stored_files(media)

    with django_capture_on_commit_callbacks(execute=True):
        services.chunks_embed_pending(manual=manual)

    figures = list(document.figures.order_by("position"))
    assert [(f.version, f.key) for f in figures] == [(2, sha256(new_port)), (2, sha256(CABLE))]
    assert all(f.chunk.version == 2 for f in figures)
    assert stored_files(media) == {f.image.name for f in figures}
    assert not set(first) & {f.pk for f in figures}


# --------------------------------------------------------------------------------------------
# Serving and showing


@pytest.fixture
def charging(tmp_path) -> ManualDocument:
    write_folder(tmp_path / "manual")
    run = ingest(str(tmp_path / "manual"))
    assert run.status == IngestionRun.Status.SUCCEEDED, run.message
    return ManualDocument.objects.get(source_name="charging.html")


@pytest.mark.django_db
def test_a_figure_is_served_to_anyone_who_may_read_its_manual(charging, media):
    figure = charging.figures.order_by("position").first()
    url = reverse("curation:figure", args=[charging.manual_id, charging.pk, figure.pk])

    response = Client().get(url)

    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    assert "max-age=31536000" in response["Cache-Control"]
    assert b"".join(response.streaming_content) == (media / figure.image.name).read_bytes()
    other = ManualDocument.objects.get(source_name="wipers.html")
    for wrong in (
        [charging.manual_id + 1, charging.pk, figure.pk],  # another manual
        [charging.manual_id, other.pk, figure.pk],  # another document
        [charging.manual_id, charging.pk, figure.pk + 1000],  # no such figure
    ):
        assert Client().get(reverse("curation:figure", args=wrong)).status_code == 404
    assert Client().post(url).status_code == 405
    # Nothing else under media is served.
    assert Client().get(f"/media/{figure.image.name}").status_code == 404
    (media / figure.image.name).unlink()
    assert Client().get(url).status_code == 404


@pytest.mark.django_db
def test_the_document_page_shows_each_figure_in_place_with_its_caption_escaped(tmp_path):
    body = (
        "<h2>Charge port</h2><p>Before the picture comes this sentence about the port.</p>"
        "<figure><img src='img/port.png' alt='x'><figcaption>Port &lt;script&gt;alert(1)"
        "&lt;/script&gt; <b>open</b></figcaption></figure>"
        "<p>After the picture comes this sentence about the cable.</p>"
    )
    write_folder(tmp_path / "manual", body=body)
    ingest(str(tmp_path / "manual"))
    document = ManualDocument.objects.get(source_name="charging.html")
    figure = document.figures.get()
    url = reverse("curation:figure", args=[document.manual_id, document.pk, figure.pk])

    html = Client().get(reverse("curation:document", args=[document.manual_id, document.pk]))
    html = html.content.decode()

    before = html.index("Before the picture comes")
    at = html.index('<figure class="doc-figure">')
    after = html.index("After the picture comes")
    assert before < at < after
    block = html[at : html.index("</figure>", at)]
    assert f'<img src="{url}"' in block and 'width="1600" height="1067"' in block
    assert "Port &lt;script&gt;alert(1)&lt;/script&gt; open" in block
    assert "<script>alert(1)" not in html
    assert html.count("alert(1)") == 2  # the image's alt text and its caption, both escaped


@pytest.mark.django_db
def test_the_admin_of_a_document_lists_its_figures(charging, admin_client):
    html = admin_client.get(
        reverse("admin:curation_manualdocument_change", args=[charging.pk])
    ).content.decode()

    for figure in charging.figures.all():
        url = reverse("curation:figure", args=[charging.manual_id, charging.pk, figure.pk])
        assert f'src="{url}"' in html
    assert "Figure 1. Charge port on the left rear." in html


@pytest.mark.django_db
def test_a_chat_citation_carries_the_thumbnails_of_its_passage(charging):
    assistant = make_assistant(charging.manual, slug="quoter", answer_style="quoted")
    client = Client()

    response = client.post(
        reverse("chat:stream"),
        {"question": "Where do I keep the charging cable?", "assistant": "quoter"},
    )
    events = b"".join(response.streaming_content).decode()

    message = Message.objects.filter(role=Message.Role.ASSISTANT).latest("pk")
    assert message.answer_style == "quoted" and message.assistant_id == assistant.pk
    cable = charging.figures.get(key=sha256(CABLE))
    url = reverse("curation:figure", args=[charging.manual_id, charging.pk, cable.pk])
    (citation,) = [c for c in message.citations if c["chunk_id"] == cable.chunk_id]
    assert citation["figures"] == [
        {"url": url, "caption": "The charging cable coiled in its bag", "width": 640, "height": 480}
    ]
    assert url in events  # the streamed citations carry them for the page's script
    html = client.get(reverse("chat:conversation", args=[message.conversation_id]))
    assert f'<img src="{url}" alt="The charging cable coiled in its bag"' in html.content.decode()


@pytest.mark.django_db
def test_citations_show_at_most_four_figures_of_a_passage(charging):
    chunk = DocumentChunk.objects.get(pk=charging.figures.first().chunk_id)
    for number in range(6):
        Figure.objects.create(
            document=charging, version=1, chunk=chunk, key=f"{number:064x}", position=10 + number
        )

    figures = selectors.chunk_figures(chunk_ids=[chunk.pk], per_chunk=4)[chunk.pk]

    assert len(figures) == 4
    assert figures[0]["caption"] == "Figure 1. Charge port on the left rear."


# The thumbnails of the streamed citations, once the page's script has shown them.
STREAMING_THUMBNAILS_JS = """() => {
  const answer = document.querySelector('.chat-answer[data-state="streaming"]');
  if (!answer) return null;
  const images = answer.querySelectorAll('.chat-citation-figures img');
  return images.length ? Array.from(images, (img) => img.getAttribute('src')) : null;
}"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_owner_sees_the_thumbnails_while_the_answer_streams_and_after(tmp_path, live_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("no Chromium at /usr/bin/chromium")
    from tests.chat.support import openai_endpoint
    from tests.fakeopenai import FakeOpenAI

    write_folder(tmp_path / "manual")
    ingest(str(tmp_path / "manual"))
    document = ManualDocument.objects.get(source_name="charging.html")
    cable = document.figures.get(key=sha256(CABLE))
    url = reverse("curation:figure", args=[document.manual_id, document.pk, cable.pk])
    answer = "Keep the charging cable coiled in the trunk when you do not use it [1]."
    with FakeOpenAI(lambda messages: answer) as fake:
        fake.chunk_delay_s = 0.25
        make_assistant(
            document.manual,
            slug="figures-rag",
            endpoint=openai_endpoint(fake.base_url),
            answer_style="grounded",
            is_default=True,
        )
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                page = browser.new_page()
                page.set_default_timeout(20_000)
                page.goto(f"{live_server.url}/chat/")
                page.locator("#chat-question").fill("Where do I keep the charging cable?")
                page.click("#chat-send")
                streamed = page.wait_for_function(STREAMING_THUMBNAILS_JS, polling=20).json_value()
                done = page.locator('.chat-answer[data-state="done"]')
                sync_api.expect(done).to_have_count(1, timeout=30_000)
                thumbnail = done.locator(f'.chat-citation-figures img[src="{url}"]').first
                sync_api.expect(thumbnail).to_be_visible()
                loaded = thumbnail.evaluate("(img) => img.complete && img.naturalWidth")
            finally:
                browser.close()

    assert url in streamed
    assert loaded == 640  # fetched from this site under its content security policy
