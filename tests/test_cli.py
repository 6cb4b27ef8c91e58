"""The command line as a person uses it: every command, --help everywhere, JSON that parses
and agrees with the library, exit code 2 with one clear line for bad arguments."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request

import numpy as np
import pytest

import transconv as tc
from transconv import cli
from transconv.cli import main
from _pictures import dense_matrix
from transconv.viz.frames import WORKED_K, frames, make_spec


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_prints_the_worked_example_and_writes_pictures(capsys, tmp_path):
    code, out, err = run(capsys, "demo", "--out", str(tmp_path / "pics"))
    assert code == 0, err
    assert "122 148" in out and "126 134" in out
    assert "C @ x.ravel() = [122, 148, 126, 134]" in out
    assert "12 24 16  4" in out  # last row of C^T @ [2, 1, 4, 4]
    assert "gives the same 4x4: True" in out
    assert "the transpose of C: True" in out
    assert out.count("PSNR") >= 4
    assert "kernel 3, stride 2: uneven" in out and "kernel 4, stride 2: uniform" in out
    names = {p.name for p in (tmp_path / "pics").iterdir()}
    assert {"worked_example_transposed.gif", "matrix_C_and_CT.png", "overlap_k3s2_vs_k4s2.png",
            "upsampling_camera.png"} <= names
    # the up-sampling beats nearest once the border is renormalised
    scores = {line.split("PSNR")[0].strip(): float(line.split("PSNR")[1].split()[0]) for line in out.splitlines() if "PSNR" in line}
    assert scores["same, border renormalised"] > scores["nearest (np.repeat)"]
    assert scores["tc.upsample coffee"] > scores["bicubic (Pillow) coffee"] + 0.5  # the shipped model, held out


@pytest.mark.parametrize("transposed", [False, True])
def test_shape_text_and_json_agree_with_the_spec(capsys, transposed):
    flags = ["-i", "5", "-k", "3", "-s", "2", "-p", "1"] + (["--transposed", "--output-padding", "1"] if transposed else [])
    code, out, _ = run(capsys, "shape", *flags, "--format", "json")
    assert code == 0
    data = json.loads(out)
    spec = make_spec((5, 5), 3, 2, 1, 1, 1 if transposed else 0, transposed)
    want = spec.transpose_output_shape((5, 5)) if transposed else spec.conv_output_shape((5, 5))
    assert tuple(data["output_shape"]) == want
    code, out, _ = run(capsys, "shape", *flags)
    assert f"-> output {want[0]}x{want[1]}" in out
    assert f"= {want[0]}" in out  # the formula with the numbers filled in


def test_shape_overlap_and_framework_table(capsys):
    code, out, _ = run(capsys, "shape", "-i", "8", "-k", "3", "-s", "2", "-p", "1", "--output-padding", "1",
                       "--transposed", "--frameworks", "--format", "json")
    data = json.loads(out)
    assert data["checkerboard_free"] is False and data["output_shape"] == [16, 16]
    same = [row for row in data["frameworks"] if "SAME" in row["padding"].upper()]
    assert len(same) >= 5 and all(row["output"] == [16, 16] for row in same)
    # every row's conv_transpose arguments reproduce its output size
    x = np.ones((8, 8))
    for row in data["frameworks"]:
        kw = row["transconv"]
        y = tc.conv_transpose(x, np.ones((3, 3)), stride=2, padding=[tuple(p) for p in kw["padding"]],
                              output_padding=kw["output_padding"])
        assert list(y.shape) == row["output"], row
    code, out, _ = run(capsys, "shape", "-i", "8", "-k", "4", "-s", "2", "-p", "1", "--transposed")
    assert "uniform interior" in out


def test_shape_solver_lists_checkerboard_free_first(capsys):
    code, out, _ = run(capsys, "shape", "-i", "7", "--to", "14", "--transposed", "--format", "json")
    assert code == 0
    choices = json.loads(out)["choices"]
    assert choices and choices[0]["checkerboard_free"]
    free = [c["checkerboard_free"] for c in choices]
    assert free == sorted(free, reverse=True)
    for c in choices:
        assert tc.conv_transpose_output_length(7, c["kernel_size"], c["stride"], c["padding"], c["dilation"],
                                               c["output_padding"]) == 14
    code, out, _ = run(capsys, "shape", "-i", "7", "--to", "14", "--transposed")
    assert "even overlap" in out.splitlines()[1]


@pytest.mark.parametrize("transposed", [False, True])
def test_matrix_json_is_the_library_matrix(capsys, transposed):
    flags = ["-i", "2" if transposed else "4", "-k", "3"] + (["--transposed"] if transposed else [])
    code, out, _ = run(capsys, "matrix", *flags, "--format", "json")
    assert code == 0
    data = json.loads(out)
    shape = (2, 2) if transposed else (4, 4)
    want = dense_matrix(frames(make_spec(shape, 3, transposed=transposed), shape, transposed), WORKED_K)
    assert np.array_equal(np.array(data["dense"]), want)
    assert data["name"] == ("C^T" if transposed else "C") and data["shape"] == list(want.shape)
    code, out, _ = run(capsys, "matrix", *flags)
    rows = {line.split("|")[0].strip(): line.split("|")[1].split() for line in out.splitlines() if "|" in line}
    if transposed:  # output x[1,1] of the transposed conv is reached by all four inputs
        assert rows["y[1,1]"] == ["4", "1", "4", "1"] and "3=x[1,1]" in out
    else:
        assert rows["y[0,0]"] == "1 4 1 . 1 4 3 . 3 3 1 . . . . .".split() and "15=x[3,3]" in out


def test_matrix_saves_npz_csv_png(capsys, tmp_path):
    import scipy.sparse as sp

    code, out, _ = run(capsys, "matrix", "-i", "5", "-k", "3", "-s", "2", "-p", "1", "--kernel-values", "1,2,3;4,5,6;7,8,9",
                       "-o", str(tmp_path / "c.npz"))
    assert code == 0 and "wrote C (9x25" in out
    c = sp.load_npz(tmp_path / "c.npz").toarray()
    w = np.arange(1, 10, dtype=float).reshape(3, 3)
    x = np.random.default_rng(0).normal(size=(5, 5))
    assert np.allclose(c @ x.ravel(), tc.conv(x, w, stride=2, padding=1).ravel())
    assert run(capsys, "matrix", "-o", str(tmp_path / "c.csv"))[0] == 0
    assert np.loadtxt(tmp_path / "c.csv", delimiter=",").shape == (4, 16)
    assert run(capsys, "matrix", "-o", str(tmp_path / "c.png"))[0] == 0
    assert (tmp_path / "c.png").stat().st_size > 1000


def _frames_and_size(path):
    from PIL import Image

    with Image.open(path) as im:
        return getattr(im, "n_frames", 1), im.size


def test_animate_gif_and_png(capsys, tmp_path):
    code, out, err = run(capsys, "animate", "-i", "3", "-k", "3", "-s", "2", "-p", "1", "--output-padding", "1",
                         "--transposed", "-o", str(tmp_path / "t.gif"))
    assert code == 0, err
    assert _frames_and_size(tmp_path / "t.gif")[0] == 36
    code, out, err = run(capsys, "animate", "-i", "5", "--view", "scatter", "-o", str(tmp_path / "c.png"), "--no-matrix")
    assert code == 0, err
    assert _frames_and_size(tmp_path / "c.png")[1][0] > 0
    code, out, err = run(capsys, "animate", "-i", "7", "--ndim", "1", "-k", "3", "-s", "2", "-o", str(tmp_path / "one.gif"))
    assert code == 0 and _frames_and_size(tmp_path / "one.gif")[0] == 3


def test_explore_writes_a_self_contained_page(capsys, tmp_path):
    code, out, _ = run(capsys, "explore", "-i", "3", "-k", "3", "-s", "2", "-p", "1", "--output-padding", "1",
                       "--transposed", "-o", str(tmp_path / "page.html"))
    assert code == 0
    html = (tmp_path / "page.html").read_text()
    assert '"t": 1' in html and '"s": 2' in html
    stripped = html.replace("http://www.w3.org/2000/svg", "")
    assert "http://" not in stripped and "https://" not in stripped and "<link" not in stripped
    assert "<script src" not in html


def test_explore_server_answers_on_localhost():
    from transconv.viz.explorer import explorer_html, make_server

    server = make_server(explorer_html(), 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.status == 200 and b"transconv explorer" in r.read()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nothing", timeout=10)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["shape", "-k", "0"], "-k/--kernel must be >= 1"),
        (["shape", "-i", "4", "-k", "3", "-s", "2", "--output-padding", "2", "--transposed"],
         "output_padding (2) must be smaller than stride (2)"),
        (["shape", "-i", "2", "-k", "5"], "larger than the padded input"),
        (["shape", "-i", "four"], "-i/--input must be an integer"),
        (["shape", "--output-padding", "1"], "only applies with --transposed"),
        (["shape", "--bogus"], "unrecognized arguments: --bogus"),
        (["animate", "-o", "x.jpg"], "must end in .gif"),
        (["matrix", "--kernel-values", "1,2;3,4"], "--kernel-values has shape (2, 2)"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
        (["shape", "--format", "xml"], "invalid choice"),
        (["shape", "-i", "7", "--to", "14x2"], "one axis"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv, fragment):
    code, out, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert fragment in lines[0]
    assert "Traceback" not in err and lines[0].startswith("transconv")


@pytest.mark.parametrize("command", ["", "demo", "shape", "matrix", "animate", "explore"])
def test_help_everywhere(capsys, command):
    code, out, _ = run(capsys, *([command] if command else []), "--help")
    assert code == 0
    assert "usage: transconv" in out


@pytest.mark.parametrize("command, option", [("bench", "--train"), ("bench", "--dask"), ("train", "--resume"),
                                             ("upsample", "--force")])
def test_lazy_commands_are_wired(capsys, command, option):
    code, out, err = run(capsys, command, "--help")
    assert code == 0 and f"usage: transconv {command}" in out and option in out


def test_train_and_upsample_through_the_cli(capsys, tmp_path):
    from PIL import Image

    model = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "--quick", "--steps", "2", "--no-progress", "--out", str(model))
    assert code == 0 and model.exists()
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(np.arange(35, dtype=np.uint8).reshape(5, 7)).save(src)
    code, out, err = run(capsys, "upsample", str(src), str(dst), "--model", str(model))
    assert code == 0
    with Image.open(dst) as img:
        assert img.size == (14, 10) and img.mode == "L"
    code, out, err = run(capsys, "train", "--quick", "--steps", "2", "--no-progress", "--out", str(model))
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1


def test_a_lazy_command_whose_module_is_missing_says_so(capsys, monkeypatch):
    monkeypatch.setitem(cli._LAZY, "phantom", ("transconv.phantom", "a command whose module is not installed"))
    code, out, err = run(capsys, "--help")
    assert code == 0 and "(not in this version)" in out
    code, out, err = run(capsys, "phantom")
    assert code == 2 and "not available" in err and len(err.strip().splitlines()) == 1


def test_every_listed_command_exists(capsys):
    code, out, err = run(capsys, "--help")
    assert code == 0 and "not in this version" not in out


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "transconv", "shape", "-i", "2", "-k", "3", "--transposed"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "input 2x2 -> output 4x4" in result.stdout
    result = subprocess.run([sys.executable, "-m", "transconv", "shape", "-s", "0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
