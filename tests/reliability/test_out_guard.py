"""`--out` never destroys what vlmscope does not own (issue 16, point 1).

Every verb replaces its output directory as a whole, so each is pointed at a
folder of notes, an existing file, and its own input: each must refuse in
one line (exit 1) and leave the data byte for byte as it was, also with
``--overwrite``. Replacing an artifact of the same kind keeps working.
Refusals happen before any model loads, so most cases need no checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlmscope.cli.app import app
from vlmscope.errors import OutputRefused
from vlmscope.io.atomic import atomic_dir, remove_stale
from vlmscope.io.outguard import MARKER, artifact_kind, check_out

runner = CliRunner()


def _snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (or of ``root`` itself)."""
    if root.is_file():
        return {"": hashlib.sha256(root.read_bytes()).hexdigest()}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _refused(args: list[str], *protected: Path, match: str) -> str:
    """Run the CLI; it must exit 1 with one ``error:`` line matching ``match`` and leave ``protected`` intact."""
    before = [_snapshot(p) for p in protected]
    res = runner.invoke(app, args)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 1, res.output
    assert len(lines) == 1 and lines[0].startswith("error: --out"), res.output
    assert match in lines[0], lines[0]
    assert [_snapshot(p) for p in protected] == before
    return lines[0]


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    """A folder of the user's own notes."""
    d = tmp_path / "notes"
    d.mkdir()
    (d / "thesis.md").write_text("three years of work\n")
    (d / "sub").mkdir()
    (d / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return d


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    f = tmp_path / "results.txt"
    f.write_text("do not lose me\n")
    return f


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "spatial"
    res = runner.invoke(app, ["generate", "spatial", "--out", str(out), "--n", "8", "--seed", "1"])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vlmscope.activations.store import write_activations
    from vlmscope.probing.synthetic import planted_dataset

    path = tmp_path_factory.mktemp("stores") / "planted"
    ds = planted_dataset(n_samples=60, n_layers=2, dim=8, n_classes=2, signal_from=1, snr=3.0, seed=0)
    write_activations(path, ds, dtype="float32", shard_samples=30)
    return path


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """Stands in for a checkpoint directory: refusals come before anything loads."""
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return d


# -- the one check -----------------------------------------------------------------------


def test_absent_empty_and_same_kind_are_replaceable(tmp_path: Path) -> None:
    check_out(tmp_path / "new", "probe")
    (tmp_path / "empty").mkdir()
    check_out(tmp_path / "empty", "probe")
    with atomic_dir(tmp_path / "p", kind="probe") as tmp:
        (tmp / "metrics.json").write_text("{}")
    assert json.loads((tmp_path / "p" / MARKER).read_text()) == {"kind": "probe"}
    assert artifact_kind(tmp_path / "p") == "probe"
    check_out(tmp_path / "p", "probe")
    with pytest.raises(OutputRefused, match="is a vlmscope probe \\(this command writes: evaluation\\)"):
        check_out(tmp_path / "p", "evaluation")


def test_artifacts_made_before_the_marker_are_recognised(tmp_path: Path) -> None:
    old = tmp_path / "old-model"
    old.mkdir()
    (old / "config.json").write_text("{}")
    (old / "vlmscope.json").write_text(json.dumps({"family": "llava", "vlmscope_version": "0.1"}))
    assert artifact_kind(old) == "model"
    (old / "vlmscope.json").write_text(json.dumps({"family": "llava"}))  # hand-written by a user: not ours
    assert artifact_kind(old) is None
    report = tmp_path / "old-report"
    report.mkdir()
    (report / "report.json").write_text("{}")
    (report / "index.html").write_text("<html>")
    assert artifact_kind(report) == "report"


def test_user_data_files_and_links_are_refused(notes: Path, a_file: Path, tmp_path: Path) -> None:
    with pytest.raises(OutputRefused, match="is not a vlmscope artifact"):
        check_out(notes, "dataset")
    with pytest.raises(OutputRefused, match="exists and is not a directory"):
        check_out(a_file, "dataset")
    link = tmp_path / "link"
    link.symlink_to(notes)
    with pytest.raises(OutputRefused, match="is not a directory"):
        check_out(link, "dataset")
    (notes / MARKER).write_text("not json")  # a broken marker marks nothing
    with pytest.raises(OutputRefused, match="is not a vlmscope artifact"):
        check_out(notes, "dataset")


def test_overlap_with_an_input_is_refused_even_for_the_same_kind(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(OutputRefused, match=" is the input "):
        check_out(dataset, "dataset", [dataset])
    with pytest.raises(OutputRefused, match=" contains the input "):
        check_out(dataset.parent, "dataset", [dataset])
    with pytest.raises(OutputRefused, match=" is inside the input "):
        check_out(dataset / "x", "evaluation", [dataset])
    check_out(dataset / "reports", "report", [dataset], may_nest=True)
    check_out(tmp_path / "o", "model", ["org/hub-id", None, {"a": 1}])  # names that are not paths


def test_current_and_root_directory_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputRefused, match="current or root directory"):
        check_out(".", "dataset")
    with pytest.raises(OutputRefused, match="current or root directory"):
        check_out("/", "dataset")


def test_a_refused_atomic_dir_creates_nothing(notes: Path) -> None:
    with pytest.raises(OutputRefused):
        with atomic_dir(notes, kind="probe"):
            raise AssertionError("the body must not run")
    assert sorted(p.name for p in notes.parent.iterdir()) == ["notes"]


def test_temp_dirs_of_dead_writers_are_removed_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".ds.tmp-{dead_pid}-abc123"
    legacy = tmp_path / ".ds.tmp-k2j4_x9"  # before pids were recorded
    old = tmp_path / f".ds.old-{dead_pid}"
    live = tmp_path / f".ds.tmp-{os.getppid()}-zzz"
    other = tmp_path / ".dsx.tmp-1-q"  # another output's name
    for d in (stale, legacy, old, live, other):
        d.mkdir()
        (d / "f").write_text("x")
    remove_stale(tmp_path / "ds")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


# -- every verb ----------------------------------------------------------------------------


def test_generate_refuses_notes_file_and_cwd_and_replaces_a_dataset(
    notes: Path, a_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gen = ["generate", "spatial", "--n", "4", "--out"]
    _refused([*gen, str(notes)], notes, match="is not a vlmscope artifact")
    _refused([*gen, str(a_file)], a_file, match="is not a directory")
    out = tmp_path / "ds"
    assert runner.invoke(app, [*gen, str(out), "--seed", "1"]).exit_code == 0
    res = runner.invoke(app, [*gen, str(out), "--seed", "2"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "dataset.json").read_text())["seed"] == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    monkeypatch.chdir(notes)
    _refused([*gen, "."], notes, match="current directory")  # the --out option's own check (cli/outdir.py)


def test_import_refuses_notes_and_its_own_image_folder(notes: Path, tmp_path: Path) -> None:
    from PIL import Image

    images = tmp_path / "img"
    images.mkdir()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(images / "a.png")
    recs = [
        {"id": str(i), "image": "a.png", "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": c}]}
        for i, c in enumerate(["cat", "dog"])
    ]
    src = tmp_path / "test.json"
    src.write_text(json.dumps(recs))
    imp = ["import", "llava", str(src), "--images", str(images), "--num-options", "2", "--out"]
    _refused([*imp, str(notes)], notes, match="is not a vlmscope artifact")
    _refused([*imp, str(images)], images, src, match="is the input")
    _refused([*imp, str(images / "ds")], images, match="is inside the input")
    _refused([*imp, str(tmp_path)], images, src, match="contains the input")
    out = tmp_path / "ds"
    for _ in range(2):  # a dataset replaces a dataset
        res = runner.invoke(app, [*imp, str(out)])
        assert res.exit_code == 0, res.output


def test_models_tiny_replaces_a_model_it_made(tmp_path: Path) -> None:
    out = tmp_path / "m"
    for seed in ("0", "1"):
        res = runner.invoke(app, ["models", "tiny", "llava", "--out", str(out), "--seed", seed])
        assert res.exit_code == 0, res.output
    assert artifact_kind(out) == "model"


def test_models_tiny_and_composite_refuse_notes(notes: Path, model_dir: Path) -> None:
    _refused(["models", "tiny", "llava", "--out", str(notes)], notes, match="is not a vlmscope artifact")
    _refused(["models", "tiny", "llava", "--out", str(model_dir)], model_dir, match="is not a vlmscope artifact")
    _refused(["models", "composite", "--vision", "org/vit", "--lm", "org/lm", "--out", str(notes)], notes,
             match="is not a vlmscope artifact")  # fmt: skip
    _refused(["models", "composite", "--vision", str(model_dir), "--lm", "org/lm", "--out", str(model_dir)],
             model_dir, match="is the input")  # fmt: skip


def test_extract_refuses_notes_even_with_overwrite_and_its_inputs(
    notes: Path, dataset: Path, model_dir: Path
) -> None:
    ext = ["extract", "--model", str(model_dir), "--dataset", str(dataset), "--out"]
    _refused([*ext, str(notes)], notes, match="is not a vlmscope artifact")
    _refused([*ext, str(notes), "--overwrite"], notes, match="--overwrite does not change this")
    _refused([*ext, str(dataset)], dataset, match="is the input")
    _refused([*ext, str(dataset / "acts")], dataset, match="is inside the input")
    _refused([*ext, str(model_dir)], model_dir, match="is the input")


def test_probe_refuses_its_own_store_and_notes_and_replaces_a_probe(
    store: Path, notes: Path, tmp_path: Path
) -> None:
    from vlmscope.activations.store import open_activations

    probe = ["probe", str(store), "--label", "relation", "--folds", "2", "--controls", "0", "--out"]
    _refused([*probe, str(store)], store, match="is the input")
    _refused([*probe, str(notes)], notes, match="is not a vlmscope artifact")
    _refused([*probe, str(store / "p")], store, match="is inside the input")
    assert open_activations(store).sizes["sample"] == 60
    out = tmp_path / "probe"
    for _ in range(2):
        res = runner.invoke(app, [*probe, str(out)])
        assert res.exit_code == 0, res.output
    assert artifact_kind(out) == "probe"
    # a probe directory is not an evaluation directory
    _refused(["evaluate", "--model", "org/m", "--dataset", str(store), "--out", str(out)], out,
             match="is a vlmscope probe")  # fmt: skip


def test_evaluate_refuses_its_own_dataset(dataset: Path, notes: Path, model_dir: Path) -> None:
    ev = ["evaluate", "--model", str(model_dir), "--dataset", str(dataset), "--out"]
    _refused([*ev, str(dataset)], dataset, match="is the input")
    _refused([*ev, str(notes)], notes, match="is not a vlmscope artifact")
    _refused([*ev, str(model_dir / "eval")], model_dir, match="is inside the input")


@pytest.mark.parametrize("verb", ["logit", "ffn"])
def test_lens_refuses_its_store_and_model(verb: str, store: Path, model_dir: Path, notes: Path) -> None:
    lens = ["lens", verb, str(store), "--model", str(model_dir), "--out"]
    _refused([*lens, str(store)], store, match="is the input")
    _refused([*lens, str(model_dir)], model_dir, match="is the input")
    _refused([*lens, str(notes)], notes, match="is not a vlmscope artifact")


@pytest.mark.parametrize("trainer", ["projector", "lora", "clip", "default"])
def test_train_refuses_its_dataset_model_and_notes(
    trainer: str, dataset: Path, model_dir: Path, notes: Path
) -> None:
    tr = ["train", trainer, "--model", str(model_dir), "--dataset", str(dataset), "--out"]
    _refused([*tr, str(dataset)], dataset, match="is the input")
    _refused([*tr, str(model_dir)], model_dir, match="is the input")
    _refused([*tr, str(notes)], notes, match="is not a vlmscope artifact")


def test_train_output_layer_refuses_its_store(store: Path, model_dir: Path, notes: Path) -> None:
    tr = ["train", "output-layer", "--store", str(store), "--model", str(model_dir), "--out"]
    _refused([*tr, str(store)], store, match="is the input")
    _refused([*tr, str(notes)], notes, match="is not a vlmscope artifact")


def test_merge_and_gradcam_refuse_their_inputs(model_dir: Path, dataset: Path, notes: Path, tmp_path: Path) -> None:
    tensors = tmp_path / "head.safetensors"
    tensors.write_bytes(b"")
    _refused(["merge", "--base", str(model_dir), "--tensors", str(tensors), "--out", str(model_dir)], model_dir,
             match="is the input")  # fmt: skip
    _refused(["merge", "--base", str(model_dir), "--tensors", str(tensors), "--out", str(notes)], notes,
             match="is not a vlmscope artifact")  # fmt: skip
    _refused(["gradcam", "--model", str(model_dir), "--dataset", str(dataset), "--out", str(dataset / "cams")],
             dataset, match="is inside the input")  # fmt: skip


def test_report_refuses_notes_and_its_artifacts_and_replaces_a_report(dataset: Path, notes: Path) -> None:
    artifacts = dataset.parent
    _refused(["report", "--artifacts", str(artifacts), "--out", str(notes)], notes, match="is not a vlmscope artifact")
    res = runner.invoke(app, ["report", "--artifacts", str(artifacts), "--out", str(artifacts)])
    assert res.exit_code == 1 and "artifacts root" in res.output
    out = artifacts / "reports"  # a report may live under the root it summarises
    for _ in range(2):
        res = runner.invoke(app, ["report", "--artifacts", str(artifacts), "--out", str(out)])
        assert res.exit_code == 0, res.output
    assert artifact_kind(out) == "report"
