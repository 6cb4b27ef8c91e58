"""Pictures: frames are the operation (checked against tc.conv / tc.conv_transpose), the
overlap map is the transposed convolution of ones, and the GIF shows the right colours
in the right cells (decoded frame by frame)."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

import transconv as tc
from _pictures import dense_matrix
from transconv.viz.frames import (
    CROPPED,
    INPUT,
    INSERTED,
    OUTPUT,
    PADDING,
    WORKED_K,
    WORKED_X,
    WORKED_Y,
    accumulate,
    example_input,
    example_kernel,
    frames,
    make_spec,
    shape_formula,
)

# (input_shape, kernel, stride, padding, dilation, output_padding) — transposed ones use output_padding
GEOMETRIES = [
    ((4, 4), 3, 1, 0, 1, 0),
    ((2, 2), 3, 1, 0, 1, 0),
    ((3, 3), 3, 2, 1, 1, 1),
    ((5, 4), (3, 2), (2, 1), (1, 0), 1, 0),
    ((3, 5), 3, 2, 0, 2, 1),
    ((4, 3), 2, 3, ((1, 0), (0, 2)), 1, 2),
    ((6,), 4, 2, 1, 1, 0),
    ((5,), 3, 3, 2, 2, 1),
    ((3, 2), 1, 2, 0, 1, 1),
]


def _run(shape, k, s, p, d, a, transposed):
    x = example_input(shape)
    spec = make_spec(shape, k, s, p, d, a if transposed else 0, transposed)
    w = example_kernel(spec.kernel_size)
    if transposed:
        y = tc.conv_transpose(x, w, stride=s, padding=p, output_padding=a, dilation=d)
    else:
        y = tc.conv(x, w, stride=s, padding=p, dilation=d)
    return spec, x, w, y


def _valid(geometry, transposed) -> bool:
    try:
        _run(*geometry, transposed)
    except tc.TransconvError:
        return False
    return True


# every geometry in each direction where the operation accepts it (some only one way)
VALID = [(g, t) for g in GEOMETRIES for t in (False, True) if _valid(g, t)]


@pytest.mark.parametrize("view", ["direct", "scatter"])
@pytest.mark.parametrize("geometry, transposed", VALID)
def test_frames_sum_to_the_operation(geometry, view, transposed):
    shape, k, s, p, d, a = geometry
    spec, x, w, y = _run(shape, k, s, p, d, a, transposed)
    anim = frames(spec, shape, transposed, view)
    assert anim.output_shape == y.shape
    assert np.allclose(accumulate(anim, x, w)[-1], y)
    # one step per output (direct) or per input (scatter)
    assert len(anim.frames) == int(np.prod(y.shape if view == "direct" else shape))


@pytest.mark.parametrize("geometry, transposed", VALID)
def test_both_views_hold_the_same_multiply_adds(geometry, transposed):
    shape, k, s, p, d, a = geometry
    spec, *_ = _run(shape, k, s, p, d, a, transposed)
    direct = Counter(q for f in frames(spec, shape, transposed, "direct").frames for q in f.pairs)
    scatter = Counter(q for f in frames(spec, shape, transposed, "scatter").frames for q in f.pairs)
    assert direct == scatter
    assert max(direct.values()) == 1


@pytest.mark.parametrize("geometry", [g for g, t in VALID if t])
def test_transposed_matrix_is_the_transpose_of_conv_matrix(geometry):
    shape, k, s, p, d, a = geometry
    spec, x, w, y = _run(shape, k, s, p, d, a, True)
    ct = dense_matrix(frames(spec, shape, True), w)
    c = dense_matrix(frames(spec, y.shape, False), w)
    assert np.array_equal(ct, c.T)
    assert np.allclose(ct @ x.ravel(), y.ravel())
    # the library's matrix builder agrees with the frames' own (input, tap, output) pairs
    lib = tc.conv_matrix(w, y.shape, spec.stride, spec.padding, spec.dilation)
    assert np.array_equal(lib.toarray(), c)
    lib_t = tc.conv_transpose_matrix(w, shape, spec.stride, spec.padding, spec.output_padding, 1, spec.dilation)
    assert np.array_equal(lib_t.toarray(), ct)


def test_worked_example_matrix_and_first_window():
    spec = make_spec((4, 4), 3)
    anim = frames(spec, (4, 4))
    c = dense_matrix(anim, WORKED_K)
    assert c.shape == (4, 16)
    assert c[0].tolist() == [1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0, 0]
    assert np.allclose(c @ WORKED_X.ravel(), [122, 148, 126, 134])
    first = anim.frames[0]
    assert first.inputs == tuple(itertools.product(range(3), range(3)))
    assert anim.matrix_rows(first) == (0,)
    t = frames(make_spec((2, 2), 3, transposed=True), (2, 2), True, "scatter")
    assert all(len(f.outputs) == 9 for f in t.frames)  # one input value reaches 9 outputs
    assert accumulate(t, WORKED_Y, WORKED_K)[-1].tolist() == [[2, 9, 6, 1], [6, 29, 30, 7], [10, 29, 33, 13], [12, 24, 16, 4]]


@pytest.mark.parametrize("geometry", [g for g, t in VALID if t])
def test_zero_insertion_picture_agrees_with_the_connectivity(geometry):
    """In the direct view of a transposed convolution, the canvas cell under each tap of a
    pair holds that pair's input: the guide's picture and the scatter are the same operation."""
    shape, k, s, p, d, a = geometry
    spec, *_ = _run(shape, k, s, p, d, a, True)
    anim = frames(spec, shape, True, "direct")
    checked = 0
    for f in anim.frames:
        cell_of_tap = dict(zip(f.window_taps, f.window))
        for j, t, _ in f.pairs:
            assert anim.source.source[cell_of_tap[t]] == np.ravel_multi_index(j, shape)
            checked += 1
    assert checked == sum(len(f.pairs) for f in frames(spec, shape, True, "scatter").frames)


def test_zero_insertion_canvas_matches_the_guide():
    # transposed conv of a 3x3 input, k3 s2 p1: zeros between inputs, padding k-1-p = 1, +1 for output_padding
    spec = make_spec((3, 3), 3, 2, 1, output_padding=1, transposed=True)
    anim = frames(spec, (3, 3), True, "direct")
    kind = anim.source.kind
    assert kind.shape == (1 + 5 + 2, 1 + 5 + 2)
    assert (kind == INPUT).sum() == 9
    assert (kind == INSERTED).sum() == 25 - 9
    assert (kind == PADDING).sum() == 64 - 25
    assert kind[1, 1] == INPUT and kind[1, 2] == INSERTED and kind[0, 0] == PADDING and kind[6, 6] == PADDING
    # every window cell showing an input is exactly one multiply-add of the frame, with the flipped tap
    for f in anim.frames:
        shown = {(int(anim.source.source[c]), t) for c, t in zip(f.window, f.window_taps) if anim.source.source[c] >= 0}
        used = {(int(np.ravel_multi_index(i, (3, 3))), t) for i, t, _ in f.pairs}
        assert shown == used


def test_scatter_canvas_marks_the_cropped_border():
    spec = make_spec((2, 2), 3, 2, 1, transposed=True)
    anim = frames(spec, (2, 2), True, "scatter")
    assert anim.dest.kind.shape == (5, 5) and anim.output_shape == (3, 3)
    assert anim.dest.kind[0, 0] == CROPPED and anim.dest.kind[1, 1] == OUTPUT
    # input (0, 0) reaches the 2x2 outputs that survive the crop, its 3x3 footprint otherwise
    assert anim.frames[0].outputs == ((0, 0), (0, 1), (1, 0), (1, 1))
    assert len(anim.frames[0].window) == 9


def test_shape_formula_numbers():
    spec = make_spec((5, 5), 3, 2, 1)
    assert shape_formula(spec, (5, 5), False)[0].endswith("= 3")
    assert spec.conv_output_shape((5, 5)) == (3, 3)


def test_frames_reject_bad_arguments():
    with pytest.raises(tc.TransconvError, match="view"):
        frames(make_spec((4, 4), 3), (4, 4), view="sideways")
    with pytest.raises(tc.TransconvError, match="output_padding"):
        make_spec((4, 4), 3, output_padding=1)
    with pytest.raises(tc.TransconvError, match="output_padding"):
        make_spec((4, 4), 3, stride=2, output_padding=2, transposed=True)


# --------------------------------------------------------------------------------------
# overlap_map
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("k,s,p,a,d", [(3, 2, 1, 1, 1), (4, 2, 1, 0, 1), (5, 3, 0, 2, 1), (3, 1, 0, 0, 2), (2, 3, 0, 0, 1), (3, 2, 0, 1, 2)])
def test_overlap_map_is_transposed_conv_of_ones(k, s, p, a, d):
    shape = (5, 4)
    m = tc.overlap_map(shape, (k, k), s, p, a, d)
    y = tc.conv_transpose(np.ones(shape), np.ones((k, k)), stride=s, padding=p, output_padding=a, dilation=d)
    assert m.dtype.kind == "i"
    assert np.array_equal(m, y)


@pytest.mark.parametrize("k", range(1, 9))
@pytest.mark.parametrize("s", range(1, 5))
def test_checkerboard_diagnosis_is_kernel_divisible_by_stride(k, s):
    diag = tc.overlap_diagnosis((12, 12), k, stride=s)
    assert diag.uniform == (k % s == 0)
    # inside the interior the map takes exactly the phase counts' products
    inner = tc.overlap_map((12, 12), k, stride=s)[diag.interior]
    if inner.size:
        assert set(np.unique(inner)) <= {a * b for a in diag.phase_counts[0] for b in diag.phase_counts[1]}
        assert (len(np.unique(inner)) == 1) == diag.uniform


def test_overlap_map_1d_and_errors():
    assert tc.overlap_map(4, 3, 2).tolist() == [1, 1, 2, 1, 2, 1, 2, 1, 1]
    with pytest.raises(tc.TransconvError):
        tc.overlap_map((4, 4), 3, stride=2, output_padding=2)
    with pytest.raises(tc.TransconvError):
        tc.overlap_map((0, 4), 3)


# --------------------------------------------------------------------------------------
# Renderers: decode what was written and look at the pixels.
# --------------------------------------------------------------------------------------


def _decode_gif(path):
    from PIL import Image

    out = []
    with Image.open(path) as im:
        for n in range(im.n_frames):
            im.seek(n)
            out.append(np.asarray(im.convert("RGB")))
    return out


def _open(path):
    """Load an image fully and close the file."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return im.copy()


def _color(img, xy):
    x, y = xy
    return tuple(int(v) for v in img[y, x])


@pytest.mark.parametrize("view", ["direct", "scatter"])
def test_gif_pixels_show_kernel_inputs_zeros_and_outputs(tmp_path, view):
    from transconv.viz.render import COLORS, layout, render_frames, save_gif

    spec = make_spec((3, 3), 3, 2, 1, output_padding=1, transposed=True)
    anim = frames(spec, (3, 3), True, view)
    path = save_gif(render_frames(anim), tmp_path / "t.gif")
    decoded = _decode_gif(path)
    assert len(decoded) == len(anim.frames)
    lay = layout(anim)
    assert decoded[0].shape == (lay.height, lay.width, 3)
    for n in (0, 7, len(anim.frames) - 1):
        img, f = decoded[n], anim.frames[n]
        moving = "source" if view == "direct" else "dest"
        canvas = anim.source if view == "direct" else anim.dest
        window = set(f.window)
        for cell in np.ndindex(*canvas.shape):
            got = _color(img, lay.probe(moving, cell))
            kind = canvas.kind[cell]
            if view == "direct":
                if cell in window:
                    want = COLORS["window_input"] if kind == INPUT else COLORS["window_zero"]
                else:
                    want = COLORS[{INPUT: "input", PADDING: "padding", INSERTED: "inserted"}[int(kind)]]
                assert got == want, (n, cell)
            elif cell in window:
                assert got == (COLORS["window_cropped"] if kind == CROPPED else COLORS["current"]), (n, cell)
            elif kind == CROPPED:
                assert got == COLORS["cropped"], (n, cell)
        if view == "direct":
            done = {g.anchor for g in anim.frames[:n]}
            for cell in np.ndindex(*anim.output_shape):
                want = "current" if cell == f.anchor else "done" if cell in done else "output"
                assert _color(img, lay.probe("dest", cell)) == COLORS[want], (n, cell)
        # the matrix entries of this step are orange, and only those
        rows, cols = anim.matrix_shape
        active = set(anim.matrix_entries(f))
        for r in range(rows):
            for c in range(cols):
                is_active = _color(img, lay.probe("matrix", (r, c))) == COLORS["matrix_active"]
                assert is_active == ((r, c) in active), (n, r, c)


def test_still_grid_matrix_pair_and_heat_maps(tmp_path):
    from transconv.viz.render import (
        COLORS,
        render_frames,
        save_grid,
        save_image_comparison,
        save_matrix_pair,
        save_overlap_maps,
    )

    anim = frames(make_spec((4, 4), 3), (4, 4))
    images = render_frames(anim, WORKED_X, WORKED_K)
    grid = _open(save_grid(images, tmp_path / "g.png"))
    assert grid.size == (4 * images[0].width, images[0].height)
    pair = np.asarray(_open(save_matrix_pair(anim, tmp_path / "m.png", step=0, w=WORKED_K)).convert("RGB"))
    # C's first row has 9 active entries and C^T's first column too: 18 orange cells' worth of pixels
    orange = np.all(pair == COLORS["matrix_active"], axis=-1)
    assert orange.any()
    heat = _open(save_overlap_maps([("k3 s2", tc.overlap_map((4, 4), 3, 2)), ("k4 s2", tc.overlap_map((4, 4), 4, 2, 1))],
                                        tmp_path / "o.png"))
    assert heat.size[0] > heat.size[1]
    cmp_ = _open(save_image_comparison([("a", np.zeros((8, 8))), ("b", np.ones((8, 8)))], tmp_path / "c.png"))
    assert cmp_.size[0] > 0


def test_render_rejects_3d():
    from transconv.viz.render import layout

    with pytest.raises(tc.TransconvError, match="1-d and 2-d"):
        layout(frames(make_spec((3, 3, 3), 2), (3, 3, 3)))


def test_demo_upsampling_kernel_and_psnr():
    from transconv.viz.demo import bilinear_kernel, psnr

    k = bilinear_kernel(2)
    assert k.shape == (4, 4) and np.isclose(k.sum(), 4.0)
    # the stride-2 phases of the kernel each sum to 1: a constant input stays constant inside
    y = tc.conv_transpose(np.ones((6, 6)), k, stride=2, padding=1)
    assert np.allclose(y[1:-1, 1:-1], 1)
    assert psnr(np.zeros(4), np.zeros(4)) == float("inf")


# ---------------------------------------------------------------- no text crosses a picture's edge


@pytest.fixture
def text_boxes(monkeypatch):
    pytest.importorskip("matplotlib")
    pytest.importorskip("PIL")
    from _pictures import TextBoxes

    return TextBoxes(monkeypatch)


def test_demo_pictures_have_no_clipped_text(tmp_path, text_boxes):
    from transconv.viz.demo import run_demo

    run_demo(tmp_path, pictures=True)
    assert len(list(tmp_path.iterdir())) >= 7
    text_boxes.assert_inside()


@pytest.mark.parametrize("view", ["direct", "scatter"])
@pytest.mark.parametrize("geometry, transposed", VALID)
def test_matrix_pictures_and_animation_frames_have_no_clipped_text(tmp_path, text_boxes, geometry, transposed, view):
    from transconv.viz.render import render_frames, save_grid, save_matrix_pair

    shape, k, s, p, d, a = geometry
    spec, *_ = _run(shape, k, s, p, d, a, transposed)
    anim = frames(spec, shape, transposed, view)
    save_matrix_pair(anim, tmp_path / "m.png")
    render_frames(anim)
    save_grid(render_frames(anim, matrix=False, compact=True), tmp_path / "grid.png", anim=anim)
    text_boxes.assert_inside()


def test_overlap_pictures_have_no_clipped_text(tmp_path, text_boxes):
    from transconv.viz.render import save_overlap_maps

    maps = [(f"kernel {k}, stride {s}, a long title to make the point", tc.overlap_map((n, n), k, stride=s))
            for n, k, s in [(3, 3, 2), (8, 4, 2), (30, 5, 3)]]
    save_overlap_maps(maps, tmp_path / "overlap.png")
    text_boxes.assert_inside()


def test_the_text_box_check_catches_a_clipped_title(tmp_path, text_boxes):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.set_title("a title much too long for a two inch figure to hold")
    fig.savefig(tmp_path / "clipped.png")
    plt.close(fig)
    with pytest.raises(AssertionError, match="cross the picture's edge"):
        text_boxes.assert_inside()
