"""The explorer page, used as a person would in headless Chromium: set the controls, step the
animation, hover and click cells, then read the DOM and compare with the library.

Needs Debian's ``chromium`` (``.ci/run`` installs it) and the ``playwright`` Python
package; never downloads a browser.  A screenshot goes to ``test-artifacts/``.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import transconv as tc
from transconv.viz.explorer import explorer_html, make_server
from transconv.viz.frames import example_input, example_kernel, frames, make_spec, shape_formula

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed (.ci/run installs it)")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    path = tmp_path_factory.mktemp("explorer") / "explorer.html"
    path.write_text(explorer_html(), encoding="utf-8")
    return path.as_uri()


class Watched:
    """A page with its console errors and any network request recorded."""

    def __init__(self, browser, allowed_prefix=None):
        self.context = browser.new_context(viewport={"width": 1500, "height": 1100})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

        def on_request(r):
            if not (r.url.startswith("file:") or r.url.startswith("data:") or (allowed_prefix and r.url.startswith(allowed_prefix))):
                self.requests.append(r.url)

        self.page.on("request", on_request)

    def close(self):
        self.context.close()


@pytest.fixture
def watched(browser, page_url):
    w = Watched(browser)
    w.page.goto(page_url)
    w.page.wait_for_selector("#dest rect")
    yield w
    errors, requests = w.errors, w.requests
    w.close()
    assert errors == [], "console errors"
    assert requests == [], "the page must not touch the network"


# --------------------------------------------------------------------------------------
# Reading and driving the page.
# --------------------------------------------------------------------------------------


def set_geometry(page, h, w, k, s, p, d, a, transposed, view="direct"):
    page.select_option("#mode", "transposed" if transposed else "conv")
    page.select_option("#view", view)
    # a (and p) first to zero so intermediate states stay valid, then the real values
    for sel, value in (("#a", 0), ("#p", 0), ("#d", d), ("#s", s), ("#k", k), ("#in-h", h), ("#in-w", w), ("#p", p), ("#a", a)):
        page.fill(sel, str(value))


def cells(page, selector):
    return {tuple(v) for v in page.eval_on_selector_all(selector, "els => els.map(e => [+e.dataset.r, +e.dataset.c])")}


def highlighted(page):
    got = page.eval_on_selector_all(
        "#matrix rect.nz.hl", "els => els.map(e => [+e.dataset.row, +e.dataset.col, +e.dataset.value])")
    return {(r, c): v for r, c, v in got}


def all_entries(page):
    got = page.eval_on_selector_all("#matrix rect.nz", "els => els.map(e => [+e.dataset.row, +e.dataset.col, +e.dataset.value])")
    return {(r, c): v for r, c, v in got}


def output_values(page):
    got = page.eval_on_selector_all(
        "#dest rect[data-i]", "els => els.map(e => [+e.dataset.i, +e.dataset.j, e.nextElementSibling.textContent])")
    return {(i, j): text for i, j, text in got}


def library_matrix(shape, k, s, p, d, a, transposed) -> np.ndarray:
    """The operation's matrix, one column per unit input, straight from tc.conv / tc.conv_transpose."""
    w = example_kernel((k, k))
    cols = []
    for n in range(shape[0] * shape[1]):
        e = np.zeros(shape)
        e.flat[n] = 1
        y = (tc.conv_transpose(e, w, stride=s, padding=p, output_padding=a, dilation=d) if transposed
             else tc.conv(e, w, stride=s, padding=p, dilation=d))
        cols.append(y.ravel())
    return np.stack(cols, axis=1)


def nonzeros(m: np.ndarray, row=None, col=None):
    out = {}
    for (r, c), v in np.ndenumerate(m):
        if v != 0 and (row is None or r == row) and (col is None or c == col):
            out[(r, c)] = float(v)
    return out


# --------------------------------------------------------------------------------------
# Tests.
# --------------------------------------------------------------------------------------


def test_default_page_is_the_worked_example(watched):
    page = watched.page
    assert page.inner_text("#out-shape") == "2x2"
    spec = make_spec((4, 4), 3)
    assert page.eval_on_selector_all("#formula div", "els => els.map(e => e.textContent)") == shape_formula(spec, (4, 4), False)
    anim = frames(spec, (4, 4))
    m = library_matrix((4, 4), 3, 1, 0, 1, 0, False)
    for n, f in enumerate(anim.frames):
        assert page.inner_text("#step-label") == f"step {n + 1} / 4"
        assert cells(page, "#source rect.win") == set(f.window)
        assert cells(page, "#dest rect.current") == {f.anchor}
        assert highlighted(page) == nonzeros(m, row=anim.matrix_rows(f)[0])
        if n < 3:
            page.click("#next")
    assert output_values(page) == {(0, 0): "122", (0, 1): "148", (1, 0): "126", (1, 1): "134"}
    # hover the output 126: row 2 of C, the kernel laid out with zeros between rows
    page.hover("#dest rect[data-i='1'][data-j='0']")
    got = highlighted(page)
    assert got == nonzeros(m, row=2)
    assert [got[k] for k in sorted(got)] == [1, 4, 1, 1, 4, 3, 3, 3, 1]
    # hover the input x[1, 1] = 8: column 5 of C
    page.hover("#source rect[data-i='1'][data-j='1']")
    assert highlighted(page) == nonzeros(m, col=5)
    # hover the matrix entry C[3, 10]: output (1, 1) and input (2, 2) are marked
    page.hover("#matrix rect.nz[data-row='3'][data-col='10']")
    assert cells(page, "#dest rect.hover") == {(1, 1)}
    assert {tuple(map(int, v)) for v in page.eval_on_selector_all(
        "#source rect.hover", "els => els.map(e => [e.dataset.i, e.dataset.j])")} == {(2, 2)}
    assert page.inner_text("#matrix-entries").startswith(f"C[3, 10] = {int(m[3, 10])}:")


GEOMETRIES = [
    # (h, w, k, s, p, d, a, transposed)
    (2, 2, 3, 1, 0, 1, 0, True),
    (3, 3, 3, 2, 1, 1, 1, True),
    (3, 4, 4, 2, 1, 1, 0, True),
    (3, 2, 3, 3, 0, 2, 2, True),
    (2, 3, 2, 2, 2, 1, 1, True),
    (5, 6, 3, 2, 1, 1, 0, False),
    (7, 5, 3, 2, 0, 2, 0, False),
]


@pytest.mark.parametrize("view", ["direct", "scatter"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "h{}w{}k{}s{}p{}d{}a{}{}".format(*g[:7], "T" if g[7] else "C"))
def test_page_agrees_with_the_library(watched, geometry, view):
    h, w, k, s, p, d, a, transposed = geometry
    page = watched.page
    set_geometry(page, h, w, k, s, p, d, a, transposed, view)
    assert page.inner_text("#error") == ""
    spec = make_spec((h, w), k, s, p, d, a, transposed)
    anim = frames(spec, (h, w), transposed, view)
    out = anim.output_shape
    assert page.inner_text("#out-shape") == f"{out[0]}x{out[1]}"
    assert page.eval_on_selector_all("#formula div", "els => els.map(e => e.textContent)") == shape_formula(spec, (h, w), transposed)
    # the whole matrix, entry by entry, against unit inputs pushed through the library
    m = library_matrix((h, w), k, s, p, d, a, transposed)
    assert all_entries(page) == nonzeros(m)
    # the canvases: kinds cell by cell
    for panel, canvas in (("source", anim.source), ("dest", anim.dest)):
        kinds = page.eval_on_selector_all(f"#{panel} rect.cell", "els => els.map(e => [+e.dataset.r, +e.dataset.c, e.dataset.kind])")
        names = {0: "input", 1: "padding", 2: "inserted", 3: "output", 4: "cropped"}
        assert {(r, c): kd for r, c, kd in kinds} == {cell: names[int(v)] for cell, v in np.ndenumerate(canvas.kind)}
    # step through the first frames
    moving = "#source" if anim.moving == "source" else "#dest"
    for n, f in enumerate(anim.frames[:4]):
        assert cells(page, f"{moving} rect.win") == set(f.window)
        if view == "direct":
            assert cells(page, "#dest rect.current") == {f.anchor}
            assert highlighted(page) == nonzeros(m, row=anim.matrix_rows(f)[0])
        else:
            assert highlighted(page) == nonzeros(m, col=anim.matrix_cols(f)[0])
        if n + 1 < len(anim.frames):
            page.click("#next")
    # last step: every output written, values equal to the library's result
    page.focus("#step-slider")
    page.keyboard.press("End")
    assert page.inner_text("#step-label") == f"step {len(anim.frames)} / {len(anim.frames)}"
    x, kern = example_input((h, w)), example_kernel((k, k))
    y = (tc.conv_transpose(x, kern, stride=s, padding=p, output_padding=a, dilation=d) if transposed
         else tc.conv(x, kern, stride=s, padding=p, dilation=d))
    shown = output_values(page)
    if out[0] * out[1] and int(page.get_attribute("#source", "data-cell")) >= 24:
        for (i, j), text in shown.items():
            assert float(text or 0) == pytest.approx(y[i, j]), (i, j)
    # hover an output cell: its row; click an input cell: every output it reaches
    oi, oj = out[0] // 2, out[1] // 2
    page.hover(f"#dest rect[data-i='{oi}'][data-j='{oj}']")
    assert highlighted(page) == nonzeros(m, row=oi * out[1] + oj)
    ii, jj = h // 2, w // 2
    page.click(f"#source rect[data-i='{ii}'][data-j='{jj}']")
    reach = {tuple(map(int, q.split(","))) for q in (page.get_attribute("#connect", "data-reach") or "").split(";") if q}
    want = {tuple(int(v) for v in np.unravel_index(r, out)) for (r, _) in nonzeros(m, col=ii * w + jj)}
    assert reach == want
    scatter = frames(spec, (h, w), transposed, "scatter")
    assert reach == set(scatter.frames[ii * w + jj].outputs)
    reached = page.eval_on_selector_all("#dest rect.reach", "els => els.map(e => [+e.dataset.i, +e.dataset.j])")
    assert {tuple(v) for v in reached} == want


@pytest.mark.parametrize(
    "geometry, call",
    [
        ((3, 3, 3, 2, 0, 1, 2, True), lambda: make_spec((3, 3), 3, 2, 0, 1, 2, True)),
        ((2, 3, 3, 1, 0, 1, 0, False), lambda: make_spec((2, 3), 3, 1, 0, 1, 0, False)),
        ((1, 1, 1, 1, 1, 1, 0, True), lambda: make_spec((1, 1), 1, 1, 1, 1, 0, True)),
    ],
)
def test_bad_geometry_shows_the_library_message(watched, geometry, call):
    page = watched.page
    with pytest.raises(tc.TransconvError) as info:
        call()
    h, w, k, s, p, d, a, transposed = geometry
    page.select_option("#mode", "transposed" if transposed else "conv")
    for sel, value in (("#d", d), ("#s", s), ("#k", k), ("#in-h", h), ("#in-w", w), ("#p", p), ("#a", a)):
        page.fill(sel, str(value))
    assert page.inner_text("#error") == str(info.value)
    assert page.inner_text("#out-shape") == "-"


def test_play_animates_and_screenshot(watched):
    page = watched.page
    set_geometry(page, 3, 3, 3, 2, 1, 1, 1, True, "direct")
    page.click("#play")
    page.wait_for_function("document.getElementById('step-label').textContent.startsWith('step 3 ')", timeout=20000)
    page.click("#play")  # pause
    label = page.inner_text("#step-label")
    page.click("#next")
    assert page.inner_text("#step-label") != label
    page.click("#source rect[data-i='1'][data-j='1']")
    page.hover("#dest rect[data-i='2'][data-j='3']")
    assert highlighted(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)
    assert (ARTIFACTS / "explorer.png").stat().st_size > 10_000


def test_served_page_with_preset_in_the_address(browser):
    server = make_server(explorer_html({"h": 2, "w": 2}), 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        origin = f"http://127.0.0.1:{server.server_address[1]}"
        w = Watched(browser, allowed_prefix=origin + "/")
        w.page.goto(origin + "/#h=3&w=3&k=3&s=2&p=1&a=1&t=1")
        w.page.wait_for_selector("#dest rect")
        assert w.page.inner_text("#out-shape") == "6x6"
        assert w.page.input_value("#mode") == "transposed"
        assert w.errors == [] and w.requests == []
        w.close()
    finally:
        server.shutdown()
        server.server_close()
