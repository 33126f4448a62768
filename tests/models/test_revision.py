"""Every library entry that loads a model from a source honours ``revision``, offline.

A local Hugging Face hub cache (``models--<org>--<name>/{refs, snapshots/<commit>}``)
holds two snapshots of one tiny composite (seeds 0 and 1: different weights)
and of one tiny CLIP; ``refs/main`` names the first, tag ``v2`` the second.
With ``HF_HUB_OFFLINE=1`` each entry point is called with each commit; a spy
on the loader records the weights it loaded and stops the entry right there
(no training runs), and the test checks they are that snapshot's and not
the other's. Merges, which read checkpoint files instead of loading a model,
run for real and their untouched tensors are compared to the snapshot's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from vlmscope.models.weights import read_tensors, tensor_names

REPO, CLIP_REPO = "vlmscope-test/tiny-composite", "vlmscope-test/tiny-clip"
SHAS = ("0f3c5a1e" * 5, "9d4b7e20" * 5)
"""Two commit hashes (40 hex digits): the snapshot directories' names."""
MARKERS = ("embed_tokens.weight", "token_embedding.weight")
"""Tensor name endings that identify a snapshot: the LM's / CLIP text tower's token embedding."""


@dataclass(frozen=True)
class Hub:
    cache: Path
    snapshots: dict[tuple[str, str], Path]
    """(repo, commit) -> snapshot directory."""

    def marker(self, repo: str, sha: str) -> torch.Tensor:
        d = self.snapshots[(repo, sha)]
        (name,) = [n for n in tensor_names(d) if n.endswith(MARKERS)]
        return read_tensors(d, [name])[name]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Hub:
    from vlmscope.models.tiny import build_tiny

    cache = tmp_path_factory.mktemp("hf") / "hub"
    snapshots = {}
    for repo, family in ((REPO, "composite"), (CLIP_REPO, "clip")):
        d = cache / f"models--{repo.replace('/', '--')}"
        for seed, sha in enumerate(SHAS):
            snapshots[(repo, sha)] = build_tiny(family, d / "snapshots" / sha, seed=seed)
        (d / "refs").mkdir()
        (d / "refs" / "main").write_text(SHAS[0])
        (d / "refs" / "v2").write_text(SHAS[1])
    return Hub(cache, snapshots)


@pytest.fixture(scope="module")
def offline(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """The hub cache as the only Hugging Face cache, offline (env and huggingface_hub's parsed constants)."""
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf-home")))
        mp.setenv("HF_HUB_CACHE", str(hub.cache))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(constants, "HF_HUB_CACHE", str(hub.cache))
        mp.setattr(constants, "HF_HUB_OFFLINE", True)
        yield hub


@pytest.fixture(scope="module")
def store(offline: Hub, tiny_dataset: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real extraction (with ``mlp``) through the hub id at tag v2."""
    from vlmscope.activations.config import ExtractConfig
    from vlmscope.activations.extract import extract

    out = tmp_path_factory.mktemp("store") / "v2.zarr"
    return Path(extract(ExtractConfig(mlp=True, dtype="float32", batch_size=8), REPO, tiny_dataset("color", 8), out,
                        revision="v2"))  # fmt: skip


class Loaded(BaseException):
    """Raised by the spies once the weights are loaded: stops the entry point (not an ``Exception``,
    so no handler on the way converts it)."""

    def __init__(self, marker: torch.Tensor) -> None:
        super().__init__("loaded")
        self.marker = marker


def _module_marker(model: torch.nn.Module) -> torch.Tensor:
    (value,) = [v for k, v in model.state_dict().items() if k.endswith(MARKERS)]
    return value.detach().clone()


@pytest.fixture
def spy(offline: Hub, monkeypatch: pytest.MonkeyPatch) -> Hub:
    """``load_model`` and the lens' ``resolve_model_dir`` raise :class:`Loaded` with what they loaded."""
    import vlmscope.lens.weights as lens_weights
    import vlmscope.models as models

    real_load, real_resolve = models.load_model, lens_weights.resolve_model_dir

    def load_model(source: Any, **kwargs: Any) -> Any:
        raise Loaded(_module_marker(real_load(source, **kwargs).model))

    def resolve_model_dir(model: Any, *, revision: str | None = None) -> Any:
        directory, _ = real_resolve(model, revision=revision)
        (name,) = [n for n in tensor_names(directory) if n.endswith(MARKERS)]
        raise Loaded(read_tensors(directory, [name])[name])

    monkeypatch.setattr(models, "load_model", load_model)
    monkeypatch.setattr(lens_weights, "resolve_model_dir", resolve_model_dir)
    return offline


def _adapter_dir(tmp: Path) -> Path:
    """Enough of a LoRA adapter directory for merge_adapter to reach the base's loading."""
    d = tmp / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text("{}")
    return d


Entry = Callable[[str, str, Path, Path], Any]
"""``(repo, revision, dataset, tmp) -> ...``: one library entry point called with ``revision``."""


def _entries() -> dict[str, tuple[str, Entry]]:
    from vlmscope.activations.config import ExtractConfig
    from vlmscope.activations.extract import extract
    from vlmscope.attribution.gradcam import gradcam
    from vlmscope.evaluation import evaluate
    from vlmscope.lens.weights import open_lens_model
    from vlmscope.models import LoadOptions, load_model
    from vlmscope.models.merge import merge_adapter
    from vlmscope.training.trainers.clip import train_clip
    from vlmscope.training.trainers.default_model import train_default
    from vlmscope.training.trainers.lora import train_lora
    from vlmscope.training.trainers.output_layer import load_head, train_output_layer
    from vlmscope.training.trainers.projector import train_projector

    return {
        "load_model": (REPO, lambda r, v, ds, t: load_model(r, options=LoadOptions(revision=v))),
        "extract": (REPO, lambda r, v, ds, t: extract(ExtractConfig(), r, ds, t / "store", revision=v)),
        "evaluate": (REPO, lambda r, v, ds, t: evaluate(r, ds, t / "eval", revision=v)),
        "gradcam": (REPO, lambda r, v, ds, t: gradcam(r, ds, t / "cam", revision=v)),
        "train_projector": (REPO, lambda r, v, ds, t: train_projector(r, [ds], t / "out", revision=v)),
        "train_lora": (REPO, lambda r, v, ds, t: train_lora(r, [ds], t / "out", revision=v)),
        "train_default": (REPO, lambda r, v, ds, t: train_default(r, [ds], t / "out", revision=v)),
        "train_clip": (CLIP_REPO, lambda r, v, ds, t: train_clip(r, [ds], t / "out", revision=v)),
        "merge_adapter": (REPO, lambda r, v, ds, t: merge_adapter(r, _adapter_dir(t), t / "out", revision=v)),
        "open_lens_model": (REPO, lambda r, v, ds, t: open_lens_model(r, revision=v)),
        "load_head": (REPO, lambda r, v, ds, t: load_head(r, revision=v)),
        "train_output_layer": (REPO, lambda r, v, ds, t: train_output_layer(t / "store", r, t / "out", revision=v)),
    }


ENTRIES = list(_entries())


@pytest.mark.parametrize("entry", ENTRIES)
def test_entry_point_loads_the_asked_revision(entry: str, spy: Hub, tiny_dataset: Callable[..., Path],
                                              tmp_path: Path) -> None:  # fmt: skip
    repo, call = _entries()[entry]
    ds = tiny_dataset("color", 8)
    for i, sha in enumerate(SHAS):
        (tmp_path / sha).mkdir()
        with pytest.raises(Loaded) as got:
            call(repo, sha, ds, tmp_path / sha)
        assert torch.equal(got.value.marker, spy.marker(repo, sha)), f"{entry} revision {sha}: other weights"
        assert not torch.equal(got.value.marker, spy.marker(repo, SHAS[1 - i]))


def test_tag_and_default_branch_resolve_through_refs(offline: Hub) -> None:
    from vlmscope.models import LoadOptions, load_model
    from vlmscope.models.ref import resolve_model_dir

    tagged = load_model(REPO, options=LoadOptions(revision="v2"))
    assert tagged.revision == "v2"
    assert torch.equal(_module_marker(tagged.model), offline.marker(REPO, SHAS[1]))
    default = load_model(REPO)  # refs/main
    assert torch.equal(_module_marker(default.model), offline.marker(REPO, SHAS[0]))
    assert resolve_model_dir(REPO, revision="v2") == (offline.snapshots[(REPO, SHAS[1])], "v2")
    assert resolve_model_dir(REPO) == (offline.snapshots[(REPO, SHAS[0])], None)


def test_unknown_revision_is_one_line_naming_it(offline: Hub) -> None:
    from vlmscope.errors import ModelError
    from vlmscope.models.ref import resolve_model_dir

    with pytest.raises(ModelError, match=rf"'{REPO}' \(revision nope\).*local Hugging Face cache"):
        resolve_model_dir(REPO, revision="nope")


def test_pin_and_revision_argument_must_agree(offline: Hub, tmp_path: Path) -> None:
    from vlmscope.errors import ModelError
    from vlmscope.models.ref import ModelRef, resolve_model_dir, write_ref

    pin = write_ref(tmp_path / "pinned", ModelRef(source=REPO, revision=SHAS[1])).parent
    assert resolve_model_dir(pin) == (offline.snapshots[(REPO, SHAS[1])], SHAS[1])
    assert resolve_model_dir(pin, revision=SHAS[1])[0] == offline.snapshots[(REPO, SHAS[1])]
    with pytest.raises(ModelError, match=f"pins revision '{SHAS[1]}' vs '{SHAS[0]}' given"):
        resolve_model_dir(pin, revision=SHAS[0])


def test_extract_records_the_revision_and_the_lens_reads_that_snapshot(
    offline: Hub, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real extraction at tag v2, then both lens analyses of it through the hub id at v2."""
    import vlmscope.lens.weights as lens_weights
    from vlmscope.activations.store import open_store
    from vlmscope.lens import FfnConfig, LogitLensConfig, ffn_analysis, logit_lens

    assert open_store(store).attrs["model_revision"] == "v2"
    opened: list[Path] = []
    real = lens_weights.resolve_model_dir

    def resolve(model: Any, *, revision: str | None = None) -> Any:
        opened.append(real(model, revision=revision)[0])
        return opened[-1], revision

    monkeypatch.setattr(lens_weights, "resolve_model_dir", resolve)
    logit_lens(store, REPO, LogitLensConfig(top_k=2), tmp_path / "logit", revision="v2")
    ffn_analysis(store, REPO, FfnConfig(neurons=2, tokens=2), tmp_path / "ffn", revision="v2")
    assert opened == [offline.snapshots[(REPO, SHAS[1])]] * 2
    assert json.loads((tmp_path / "logit" / "metrics.json").read_text())


STAGES = {
    "extract": ["--model", "default", "--model-dir", "{pin}", "--dataset", "{ds}", "--out", "{out}"],
    "evaluate": ["--model", "default", "--model-dir", "{pin}", "--dataset", "{ds}", "--out", "{out}"],
    "output_layer": ["--model-dir", "{pin}", "--store", "{store}", "--out", "{out}"],
    "lens_logit": ["--model-dir", "{pin}", "--store", "{store}", "--out", "{out}"],
    "lens_ffn": ["--model-dir", "{pin}", "--store", "{store}", "--out", "{out}"],
    # the study pipelines' stages (studies/<study>/dvc.yaml)
    "train": ["--trainer", "projector", "--section", "train.projector", "--model-dir", "{pin}", "--dataset", "{ds}",
              "--out", "{out}"],
    "gradcam": ["--model-dir", "{pin}", "--dataset", "{ds}", "--out", "{out}"],
    "merge": ["--base", "{pin}", "--adapter", "{adapter}", "--out", "{out}"],
}  # fmt: skip
"""The stages that load a pipeline model from its directory: argv, with the pin, dataset, store and output."""

STUDY_PARAMS = {"train": {"projector": {"loop": {"max_steps": 1, "batch_size": 2}}}, "gradcam": {"max_samples": 1}}
"""Sections the study stages read, added to the root params.yaml for the test."""


@pytest.mark.parametrize("stage", list(STAGES))
def test_stage_loads_the_pinned_revision(stage: str, spy: Hub, store: Path, tiny_dataset: Callable[..., Path],
                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import importlib.util
    import sys

    from vlmscope.models.ref import ModelRef, write_ref

    root = Path(__file__).resolve().parents[2]
    import yaml

    params = yaml.safe_load((root / "params.yaml").read_text()) | STUDY_PARAMS
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))  # stages read params.yaml from the working dir
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location(f"stage_{stage}", root / "stages" / f"{stage}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for i, sha in enumerate(SHAS):
        pin = write_ref(tmp_path / sha / "model", ModelRef(source=REPO, revision=sha)).parent
        values = {"{pin}": str(pin), "{ds}": str(tiny_dataset("color", 8)), "{store}": str(store),
                  "{out}": str(tmp_path / sha / "out"), "{adapter}": str(_adapter_dir(tmp_path / sha))}  # fmt: skip
        monkeypatch.setattr(sys, "argv", [stage, *(values.get(a, a) for a in STAGES[stage])])
        with pytest.raises(Loaded) as got:
            module.main()
        assert torch.equal(got.value.marker, spy.marker(REPO, sha)), f"stage {stage}, pin {sha}: other weights"
        assert not torch.equal(got.value.marker, spy.marker(REPO, SHAS[1 - i]))


def test_merge_tensors_reads_the_base_at_its_revision(offline: Hub, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from vlmscope.models.merge import merge_tensors

    base = offline.snapshots[(REPO, SHAS[1])]
    (name,) = [n for n in tensor_names(base) if n.endswith("multi_modal_projector.linear_1.bias")]
    new = torch.full_like(read_tensors(base, [name])[name], 0.5)
    save_file({name: new}, str(tmp_path / "t.safetensors"))
    info = merge_tensors(REPO, tmp_path / "t.safetensors", tmp_path / "out", revision=SHAS[1])
    assert info["revision"] == SHAS[1] and info["base"] == REPO
    names = tensor_names(base)
    got, want = read_tensors(tmp_path / "out", names), read_tensors(base, names)
    for n in names:
        assert torch.equal(got[n], new if n == name else want[n]), n


def test_a_projector_trained_from_a_hub_revision_keeps_that_snapshot(offline: Hub, tiny_dataset: Callable[..., Path],
                                                                     tmp_path: Path) -> None:  # fmt: skip
    """A real (two-step) run from tag v2: frozen tensors are v2's, the family sidecar and revision are kept."""
    from vlmscope.models import detect_family
    from vlmscope.training.config import LoopConfig
    from vlmscope.training.trainers.projector import ProjectorTrainConfig, train_projector

    torch.set_num_threads(1)
    cfg = ProjectorTrainConfig(loop=LoopConfig(max_steps=2, batch_size=4, lr=1e-3, checkpoint_every=0))
    out = tmp_path / "proj"
    train_projector(REPO, [tiny_dataset("color", 8)], out, cfg, revision="v2")
    snapshot = offline.snapshots[(REPO, SHAS[1])]
    frozen = [n for n in tensor_names(snapshot) if "projector" not in n]
    got, want = read_tensors(out, frozen), read_tensors(snapshot, frozen)
    assert all(torch.equal(got[n], want[n]) for n in frozen)
    assert detect_family(out) == "composite"  # the snapshot's sidecar (a LLaVA model_type alone says llava)
    assert json.loads((out / "training_args.json").read_text())["revision"] == "v2"
