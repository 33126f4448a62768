"""Every shipped profile, applied to params.yaml, gives params every stage accepts.

``profiles/real-gpu.yaml`` only runs on a GPU with hub access, so nothing else ever reads it: a typo
in a section name, a bad dtype or a model without a pin would surface hours into a real run. Here
each profile is applied (the deep merge users run) and every section is validated the way its stage
reads it (stages/*.py: ``load_config`` with the same overrides), and the generators plan each dataset
at its full size, so an infeasible design fails here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from vlmscope.activations.config import ExtractConfig
from vlmscope.data.generators.base import GENERATORS, make_config
from vlmscope.evaluation.config import EvaluateConfig
from vlmscope.lens import FfnConfig, LogitLensConfig
from vlmscope.models.ref import PipelineModel
from vlmscope.params import load_config, section
from vlmscope.probing.config import ProbeConfig
from vlmscope.profiles import apply_profile
from vlmscope.report import ReportConfig

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted((ROOT / "profiles").glob("*.yaml"))


def _applied(profile: Path, tmp_path: Path) -> dict[str, Any]:
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    merged = apply_profile(profile, params)
    assert yaml.safe_load(params.read_text()) == merged  # what the stages will read
    return merged


def test_the_profiles_are_the_shipped_ones() -> None:
    assert {p.name for p in PROFILES} == {"real-gpu.yaml", "smoke.yaml"}


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_profile_names_only_existing_sections(profile: Path) -> None:
    prof = yaml.safe_load(profile.read_text())
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert isinstance(prof, dict) and set(prof) <= set(base), sorted(set(prof) - set(base))


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_every_stage_accepts_the_profiled_params(profile: Path, tmp_path: Path) -> None:
    params = _applied(profile, tmp_path)
    hub = section(params, "hub_models")
    for name, pin in hub.items():  # stages/pin_model.py
        assert isinstance(pin.get("source"), str) and pin["source"], name
        assert pin.get("revision") is None or isinstance(pin["revision"], str), name
    models = section(params, "models")
    # a model's artifacts/models/<name> comes from the train_default stage or a pin
    assert set(models) <= set(hub) | {"default"}, sorted(set(models) - set(hub) - {"default"})
    datasets = section(params, "datasets")
    for name in datasets:  # stages/generate.py
        gen = dict(section(params, f"datasets.{name}.generator"))
        config = make_config(gen.pop("kind"), **gen)
        plan = GENERATORS.get(config.kind).plan(config)  # n is images for some kinds, rows for others
        assert plan.images and plan.manifest.height >= len(plan.images) > 0, name
    for gen in section(params, "train_datasets").values():
        gen = dict(gen)
        make_config(gen.pop("kind"), **gen)
    for model_name, runtime in models.items():  # stages/extract.py, stages/evaluate.py
        m = PipelineModel(model_name, "unused", None, str(runtime.get("dtype", "float32")),
                          str(runtime.get("device", "cpu")))  # fmt: skip
        load_config(ExtractConfig, params, "extract", model_dtype=m.dtype, device=m.device)
        for ds in datasets:
            per_dataset = section(params, f"datasets.{ds}.evaluate", default={})
            load_config(EvaluateConfig, params, "evaluate", dtype=m.dtype, device_map=m.device_map, **per_dataset)
    for ds in datasets:  # stages/probe.py
        load_config(ProbeConfig, params, "probe", **section(params, f"datasets.{ds}.probe"))
    load_config(LogitLensConfig, params, "lens")
    load_config(FfnConfig, params, "ffn")
    load_config(ReportConfig, params, "report")
    from vlmscope.training.trainers.default_model import DefaultTrainConfig
    from vlmscope.training.trainers.output_layer import OutputLayerTrainConfig

    load_config(DefaultTrainConfig, params, "train_default", base=DefaultTrainConfig())
    load_config(OutputLayerTrainConfig, params, "output_layer", drop=("datasets",))
    assert set(section(params, "output_layer.datasets")) <= set(datasets)


def test_real_gpu_runs_the_studies_hub_models_on_cuda(tmp_path: Path) -> None:
    params = _applied(ROOT / "profiles" / "real-gpu.yaml", tmp_path)
    hub = params["hub_models"]
    assert hub and all(pin.get("revision") for pin in hub.values())  # every hub model is pinned
    assert all(params["models"][name] == {"dtype": "bfloat16", "device": "cuda"} for name in hub)
    # the profile replaces whole entries only where it means to: the defaults it does not name survive
    assert params["probe"] == yaml.safe_load((ROOT / "params.yaml").read_text())["probe"]
