"""The whole pipeline on the embedded tiny models, then shared through a real SSH remote.

One module-scoped run of ``dvc repro`` (smoke profile, stage scripts run with
warnings as errors) serves every test here. The SSH round trip pushes the
artifacts to an sshd on 127.0.0.1, clones the repository fresh, pulls, and
checks that nothing GPU-class reruns while a changed probe param reruns only
the probe stages (and the report that reads them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import yaml
from tests.pipeline.project import (
    COMMAND_TIMEOUT,
    copy_project,
    dvc,
    git_repo,
    read_trace,
    run,
    stages_run,
    trace_problems,
)
from tests.pipeline.sshd import running_sshd, sshd_unavailable_reason

from vlmscope.params import TRACE_ENV
from vlmscope.profiles import apply_profile

ROOT = Path(__file__).resolve().parents[2]
GPU_CLASS = ("extract@", "train_default", "evaluate@", "generate@", "generate_train@", "tiny_model")

# the first test pays for the module's `dvc repro` (fixture setup counts against pytest-timeout), so the
# module gets more than the suite-wide 600 s; a hung dvc/git still ends the run instead of stalling it
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2 * COMMAND_TIMEOUT)]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("e2e") / "repo"
    repo.mkdir()
    copy_project(repo)
    apply_profile(repo / "profiles" / "smoke.yaml", repo / "params.yaml")
    git_repo(repo)
    # every stage records the params keys it reads and the modules it imports
    out = dvc("repro", cwd=repo, env={TRACE_ENV: str(repo.parent / "stage-trace.jsonl")})
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "repro"], repo)
    (repo / ".first-repro.log").write_text(out.stdout)
    return repo


def test_repro_runs_every_stage_and_writes_the_report(project: Path) -> None:
    ran = stages_run((project / ".first-repro.log").read_text())
    listed = [line.split()[0] for line in dvc("stage", "list", cwd=project).stdout.splitlines() if line.strip()]
    assert sorted(ran) == sorted(listed)
    html = project / "artifacts" / "reports" / "index.html"
    assert html.is_file() and html.stat().st_size > 10_000
    # one run of each analysis per (model, dataset): the smoke pipeline has one model and five datasets
    summary = json.loads((html.parent / "report.json").read_text())
    counts = {k: summary[k] for k in ("n_stores", "n_probes", "n_evals", "n_logit_lens", "n_ffn")}
    assert counts == dict.fromkeys(counts, 5), counts
    assert summary["n_problems"] == 0, "every input the pipeline wrote must be readable by the report"
    # every figure is embedded in the page and also written beside it as a PNG
    pngs = sorted(html.parent.glob("*.png"))
    assert len(pngs) == summary["n_figures"] > 0
    assert html.read_text().count('<img src="data:image/png;base64,') >= len(pngs)
    for name in ("spatial", "color", "relations", "counting", "shape"):
        store = project / "artifacts" / "activations" / "default" / f"{name}.zarr"
        assert store.is_dir()
        assert sum(1 for p in store.rglob("*") if p.is_file()) <= 100


def test_stages_read_only_listed_params_and_run_only_listed_code(project: Path) -> None:
    """What each stage process read (params keys) and imported (vlmscope modules) vs its dvc.lock entry."""
    records = read_trace(project.parent / "stage-trace.jsonl")
    assert trace_problems(project, "dvc.yaml", records) == []
    # the check can fail: without its dataset key the probe stage's read is uncovered
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    probe = next(s for s in lock["stages"] if s.startswith("probe@"))
    listed = lock["stages"][probe]["params"]["params.yaml"]
    lock["stages"][probe]["params"]["params.yaml"] = {k: v for k, v in listed.items() if not k.startswith("datasets.")}
    problems = trace_problems(project, "dvc.yaml", records, lock)
    assert len(problems) == 1 and problems[0].startswith(f"{probe}: reads params ['datasets."), problems


def test_second_repro_runs_nothing(project: Path) -> None:
    out = dvc("repro", cwd=project)
    assert stages_run(out.stdout) == []
    assert "up to date" in dvc("status", cwd=project).stdout


def test_metrics_show_lists_probe_and_eval_metrics(project: Path) -> None:
    data = json.loads(dvc("metrics", "show", "--json", cwd=project).stdout)
    files = json.dumps(data)
    assert "artifacts/probes/default/spatial/metrics.json" in files
    assert "artifacts/evals/default/counting/summary.json" in files


def test_probe_param_change_reruns_only_probe_stages(project: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    run(["git", "clone", "-q", str(project), str(work)], tmp_path)
    # a fresh clone shares the cache through a local remote here; the SSH test covers real transport
    dvc("remote", "add", "-f", "-d", "tmp", str(tmp_path / "remote"), cwd=project)
    dvc("push", cwd=project)
    dvc("remote", "add", "-f", "-d", "tmp", str(tmp_path / "remote"), cwd=work)
    dvc("pull", cwd=work)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["probe"]["C"] = 0.1
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = stages_run(dvc("repro", cwd=work).stdout)
    assert ran, "changing probe.C must rerun the probe stages"
    assert all(s.startswith("probe@") or s == "report" for s in ran), ran
    assert any(s.startswith("probe@") for s in ran)


def test_ssh_remote_round_trip(project: Path, tmp_path: Path) -> None:
    reason = sshd_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with running_sshd(tmp_path / "sshd") as server:
        remote_dir = tmp_path / "ssh-remote"
        remote_dir.mkdir()
        url = f"ssh://{server.host}{remote_dir}"
        dvc("remote", "add", "-f", "-d", "ssh", url, cwd=project)
        dvc("remote", "modify", "ssh", "port", str(server.port), cwd=project)
        dvc("remote", "modify", "ssh", "user", server.user, cwd=project)
        dvc("remote", "modify", "ssh", "keyfile", str(server.keyfile), cwd=project)
        dvc("remote", "modify", "ssh", "allow_agent", "false", cwd=project)
        dvc("push", "-r", "ssh", cwd=project)
        assert any(remote_dir.rglob("*")), "nothing was pushed"
        run(["git", "add", "-A"], project)
        run(["git", "commit", "-qm", "ssh remote", "--allow-empty"], project)

        clone = tmp_path / "clone"
        run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
        store = clone / "artifacts" / "activations" / "default" / "spatial.zarr"
        assert not store.exists(), "git must carry only DVC's pointers, not the store"  # dvc's .gitignore files do travel
        dvc("pull", "-r", "ssh", cwd=clone)
        assert store.is_dir()
        ran = stages_run(dvc("repro", cwd=clone).stdout)
        assert not [s for s in ran if s.startswith(GPU_CLASS)], ran
        assert ran == [], f"a pulled clone must be up to date, but reran {ran}"


def _find(node: object, match: Callable[[dict], bool]) -> dict | None:
    """The first mapping (depth first) in parsed JSON for which ``match`` holds."""
    if isinstance(node, dict):
        if match(node):
            return node
        children: Iterable[object] = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _find(child, match)
        if found is not None:
            return found
    return None


def test_exp_run_sets_a_param_and_shows_probe_metrics(project: Path) -> None:
    dvc("exp", "run", "-S", "probe.C=0.5", "-n", "c05", cwd=project)
    shown = json.loads(dvc("exp", "show", "--json", cwd=project).stdout)
    exp = _find(shown, lambda d: d.get("name") == "c05")
    assert exp is not None, "experiment c05 is not listed"
    probe = _find(exp, lambda d: isinstance(d.get("probe"), dict))
    assert probe is not None and probe["probe"]["C"] == 0.5, "the experiment must record the param it set"
    assert "artifacts/probes/default/spatial/metrics.json" in json.dumps(exp)
    # the probe stages really ran with it: every fitted probe's saved config has the new C
    configs = sorted((project / "artifacts" / "probes" / "default").glob("*/probes/config.json"))
    assert len(configs) == 5 and all(json.loads(c.read_text())["config"]["C"] == 0.5 for c in configs)
