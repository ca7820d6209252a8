"""Several teachers through `run_pipeline` on a tiny Mahjong config: routed logit KD (white-box members), routed
sequence KD (engine + white-box), the records, the stage hash, and the refusal to resume with other teachers."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from stratos.artifacts import config_hash
from stratos.checks import validate
from stratos.errors import UserError
from stratos.pipeline import SPECS, _select, run_pipeline, stage_hash
from tests.conftest import compose_cfg

SMALL = ["+task=mahjong", "debug=fast", "task.n_train=64", "task.n_val=16", "task.n_test=8", "trainer.max_steps=4",
         "trainer.batch_size=8", "trainer.val_every_n_steps=4", "trainer.checkpoint_every_n_steps=2",
         "pipeline.stages=[data,distill]"]


def run(tmp_path, overrides, name="run"):
    cfg = compose_cfg([*SMALL, *overrides], tmp_path)
    validate(cfg)
    run_dir = tmp_path / name
    run_pipeline(cfg, str(run_dir))
    return run_dir


@pytest.fixture(scope="module")
def teacher_dirs(tmp_path_factory):
    """Two tiny white-box teachers with one tokenizer: one trained briefly, then a copy with perturbed weights."""
    root = tmp_path_factory.mktemp("teachers")
    a = run(root, ["strategy=injection", "task.curriculum=[]"]) / "distill" / "model"  # one mix: fixed teachers
    b = root / "teacher_b"
    shutil.copytree(a, b)
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(b)
    g = torch.Generator().manual_seed(0)  # not the global RNG: the teachers must not depend on the tests before
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    m.save_pretrained(b)
    return str(a), str(b)


def two(dirs, *extra):
    return ["+teacher@teachers.low=tiny_teacher", f"teachers.low.name_or_path={dirs[0]}",
            "+teacher@teachers.high=tiny_teacher", f"teachers.high.name_or_path={dirs[1]}", "strategy=alignment", *extra]


def test_routed_logit_kd_by_slice_writes_the_routing_the_shares_and_the_teacher_manifest(tmp_path, teacher_dirs):
    run_dir = run(tmp_path, two(teacher_dirs, "route.by=slice", "++route.slices={0-1: low, 2+: high}"))
    d = run_dir / "distill"
    rows = [json.loads(x) for x in (run_dir / "data" / "train.jsonl").read_text().splitlines()]
    want = {"low": sum(r["n_waits"] <= 1 for r in rows), "high": sum(r["n_waits"] >= 2 for r in rows)}
    routing = json.loads((d / "routing.json").read_text())
    assert routing["rows"] == {k: v for k, v in want.items() if v} and routing["by"] == "slice"
    assert sum(routing["token_shares"].values()) == pytest.approx(1.0, abs=1e-3)
    strategy = json.loads((d / "strategy.json").read_text())
    assert strategy["mode"] == "logit" and strategy["routing"]["assignment"] == {"0-1": "low", "2+": "high"}
    metrics = json.loads((d / "manifest.json").read_text())["metrics"]
    assert metrics["distill/teacher_share/low"] == routing["token_shares"]["low"]
    ckpt = torch.load(d / "checkpoints" / "last.ckpt", weights_only=False)
    assert [t["id"] for t in ckpt["stratos_teachers"]] == ["low", "high"]
    assert [t["source"] for t in ckpt["stratos_teachers"]] == list(teacher_dirs)
    header = next(iter((d / "logs").glob("version_*/metrics.csv"))).read_text().splitlines()[0]
    assert "train/teacher_share/low" in header and "train/teacher_share/high" in header
    hparams = next(iter((d / "logs").glob("version_*/hparams.yaml"))).read_text()
    assert "teachers:" in hparams and "route:" in hparams


def test_resuming_with_other_teacher_weights_is_refused(tmp_path, teacher_dirs):
    dirs = (teacher_dirs[0], str(tmp_path / "high"))
    shutil.copytree(teacher_dirs[1], dirs[1])
    over = two(dirs, "route.by=slice", "++route.slices={0-1: low, 2+: high}")
    run_dir = run(tmp_path, over)
    (run_dir / "distill" / "manifest.json").unlink()  # interrupted after its checkpoints: the re-run resumes
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(dirs[1])
    with torch.no_grad():
        next(m.parameters()).add_(0.1)
    m.save_pretrained(dirs[1])  # same config (same stage hash), other weights behind `high`
    with pytest.raises(UserError, match=r"the checkpoint was distilled from \[low=.*high=tiny_teacher-") as e:
        run(tmp_path, over)
    assert "\n" not in str(e.value)


def test_routed_sequence_kd_takes_each_rows_text_from_its_own_teacher(tmp_path, teacher_dirs):
    """An engine member and a white-box member share no logits: sequence KD, each row's rationale from its
    own teacher, rejection-sampled per teacher."""
    run_dir = run(tmp_path, ["+teacher@teachers.engine=task_engine", "+teacher@teachers.lm=tiny_teacher",
                             f"teachers.lm.name_or_path={teacher_dirs[0]}", "teachers.lm.max_new_tokens=16",
                             "strategy=alignment", "route.by=slice", "++route.slices={0: lm}", "route.default=engine"])
    d = run_dir / "distill"
    strategy = json.loads((d / "strategy.json").read_text())
    assert strategy["mode"] == "sequence"
    routing = json.loads((d / "routing.json").read_text())
    assert set(routing["rows"]) <= {"engine", "lm"} and routing["rows"]["engine"] > 0
    shares = routing["token_shares"]
    assert set(routing["kept"]) == set(routing["rows"]) and routing["kept"]["engine"]["rejected"] == 0
    assert sum(k["kept"] for k in routing["kept"].values()) == json.loads((d / "manifest.json").read_text())[
        "metrics"]["strategy/kept"]
    assert shares["engine"] > 0.9  # the engine's verified rationales are kept, the 16-token lm answers are not


def test_teachers_and_route_enter_the_distill_hash_only_with_several_teachers(tmp_path, teacher_dirs):
    base = compose_cfg(SMALL, tmp_path)
    assert stage_hash(base, "distill", {}) == config_hash({k: _select(base, k) for k in SPECS["distill"].keys}, {})
    a = compose_cfg([*SMALL, *two(teacher_dirs, "route.by=auto")], tmp_path)
    b = compose_cfg([*SMALL, *two(teacher_dirs, "route.by=auto", "route.probe_n=4")], tmp_path)
    assert len({stage_hash(base, "distill", {}), stage_hash(a, "distill", {}), stage_hash(b, "distill", {})}) == 3


def test_several_teachers_read_the_plan_and_hash_the_prices_their_routing_is_priced_with(tmp_path):
    """route=auto prices teacher work on the plan's server (plan.json) or this machine (servers.local_price_hour)."""
    from stratos.pipeline import stage_inputs

    done = {"data": "data manifest", "plan": "plan manifest"}
    base = compose_cfg(SMALL, tmp_path)
    assert stage_inputs(base, "distill", done) == {"data": "data manifest"}  # one teacher: unchanged
    over = [*SMALL, "+teacher@teachers.a=task_engine", "+teacher@teachers.b=task_engine"]
    many = compose_cfg(over, tmp_path)
    assert stage_inputs(many, "distill", done) == done
    dearer = compose_cfg([*over, "servers.local_price_hour=1.0"], tmp_path)
    assert stage_hash(many, "distill", {}) != stage_hash(dearer, "distill", {})
    assert stage_hash(base, "distill", {}) == stage_hash(compose_cfg([*SMALL, "servers.local_price_hour=1.0"],
                                                                     tmp_path), "distill", {})


def test_per_teacher_stores_at_full_k_give_the_live_routed_kd(tmp_path, teacher_dirs):
    """Each teacher's top-k store over its own rows: at k = V the routed store KD is the routed live KD."""
    from stratos.distill.examples import ExampleDataset, TextExample, WithIndex, collate
    from stratos.distill.module import DistillModule
    from stratos.distill.routing import open_routed_stores
    from stratos.models.teacher import HFTeacher
    from stratos.models.teachers import RoutedTeacher

    routed = RoutedTeacher({"low": HFTeacher("tiny_teacher", teacher_dirs[0]),
                            "high": HFTeacher("tiny_teacher", teacher_dirs[1])})
    tok = routed.tokenizer
    examples = [TextExample(f"1m 2m 3m 4m 5m {n}p", f"Answer: {n}p", teacher=n % 2) for n in range(1, 9)]
    ds = ExampleDataset(tok, examples, [], 0.0, 64, 0)
    batch = collate(tok.pad_token_id)([WithIndex(ds)[i] for i in (5, 0, 3, 6)])
    assert batch["teacher_index"].tolist() == [0, 1, 0, 1]
    student = HFTeacher("s", teacher_dirs[0]).model.train()
    for p in student.parameters():
        p.requires_grad_(True)
    align = {"kd_weight": 1.0, "temperature": 2.0}
    want = DistillModule(student, "logit", align, 1e-3, 0.0, 1, 10, teacher=routed).losses(batch)["kd"].item()
    V = student.get_output_embeddings().weight.shape[0]
    reader, stats = open_routed_stores(routed, ds, "train", cache_root=str(tmp_path), k=V, temperature=2.0,
                                       pad_id=tok.pad_token_id, batch_size=3)
    assert set(stats["by_teacher"]) == {"low", "high"} and stats["written"]
    assert stats["n_tokens"] == sum(s["n_tokens"] for s in stats["by_teacher"].values())
    stored = DistillModule(student, "logit", align, 1e-3, 0.0, 1, 10, topk={"train": reader}).losses(batch)
    assert stored["kd"].item() == pytest.approx(want, rel=2e-3, abs=1e-4)
    assert abs(want - DistillModule(student, "logit", align, 1e-3, 0.0, 1, 10, teacher=routed.members["low"])
               .losses(batch)["kd"].item()) > 1e-4  # one teacher for every row would differ


def test_routed_store_kd_runs_through_the_pipeline(tmp_path, teacher_dirs):
    run_dir = run(tmp_path, two(teacher_dirs, "route.by=slice", "++route.slices={0: low}", "route.default=high",
                                "strategy.alignment.top_k=8"))
    store = json.loads((run_dir / "distill" / "topk_store.json").read_text())
    routing = json.loads((run_dir / "distill" / "routing.json").read_text())
    assert set(store["train"]["by_teacher"]) == set(routing["rows"])
    assert json.loads((run_dir / "distill" / "strategy.json").read_text())["mode"] == "logit"


def test_column_routing_reads_teacher_id_from_the_users_data_file(tmp_path, teacher_dirs):
    """A `task.source` JSONL whose rows name their teacher: the field reaches the rows, each goes to its teacher."""
    from stratos.tasks.mahjong.jsonl import benchmark_record
    from stratos.tasks.mahjong.task import MahjongTask

    rows = MahjongTask(name="mahjong", n_train=60, n_val=10, n_test=10, seed=3).build_splits()["train"]
    src = tmp_path / "hands.jsonl"
    with open(src, "w") as f:
        for i, r in enumerate(rows):
            rec = benchmark_record(r["hand"], r["winning_tiles"])
            f.write(json.dumps({**rec, "teacher_id": "low" if i % 3 else "high"}) + "\n")
    run_dir = run(tmp_path, [f"task.source={src}", "task.n_train=40", "task.n_val=8", "task.n_test=8",
                             *two(teacher_dirs, "route.by=column")])
    train = [json.loads(x) for x in (run_dir / "data" / "train.jsonl").read_text().splitlines()]
    routing = json.loads((run_dir / "distill" / "routing.json").read_text())
    assert routing["by"] == "column"
    assert routing["rows"] == {t: sum(r["teacher_id"] == t for r in train) for t in ("low", "high")}
    assert json.loads((run_dir / "distill" / "strategy.json").read_text())["mode"] == "logit"


def test_a_black_box_members_topk_logprobs_give_token_kd_on_its_own_rows(tmp_path, monkeypatch):
    """The rules engine for most rows and `stratos serve` (OpenAI-compatible, top_logprobs=4) for the rest: the
    served teacher's rationales carry its top-k log-probs (token-level KD), the engine's rows train on CE."""
    from stratos.serve.engine import load_engine
    from stratos.serve.server import running
    from stratos.serve.settings import ServeSettings
    from tests.helpers.tiny_export import build_tiny_export

    exp = build_tiny_export(str(tmp_path / "tiny"), heads=2, kv_heads=2)
    monkeypatch.setenv("STRATOS_TEST_KEY", "k")
    engine = load_engine(exp["hf"], "torch", threads=1)
    with running(engine, ServeSettings(port=0, api_key="k")) as url:
        run_dir = run(tmp_path, ["+teacher@teachers.engine=task_engine", "+teacher@teachers.api=openai_endpoint",
                                 f"teachers.api.base_url={url}", "teachers.api.model=tiny",
                                 "teachers.api.api_key_env=STRATOS_TEST_KEY", "teachers.api.top_logprobs=4",
                                 "teachers.api.max_new_tokens=16", f"student.name_or_path={exp['hf']}",
                                 "strategy=alignment", "strategy.alignment.verify=false", "route.by=slice",
                                 "++route.slices={0-1: api}", "route.default=engine", "trainer.max_steps=3"])
    d = run_dir / "distill"
    routing = json.loads((d / "routing.json").read_text())
    rep = json.loads((d / "token_kd.json").read_text())
    assert json.loads((d / "strategy.json").read_text())["mode"] == "sequence"
    assert rep["used"] and rep["k"] == 4 and rep["rationales"] == routing["rows"]["api"] > 0, rep  # only api rows
    assert rep["aligned"] >= 0.9 * rep["rationales"], rep
    assert routing["rows"]["engine"] > 0 and routing["token_shares"]["engine"] > 0


@pytest.mark.parametrize("ids,extra,needle", [
    (["low", "mid"], [], "invalid value for 'route.column': 'teacher_id' (allowed: {src}:2 names teacher 'mid'"),
    (["low", None], [], "invalid value for 'route.default': None (allowed: a teacher id: {src}:2 names no teacher_id)"),
    (["low", None], ["route.default=low"], None),
])
def test_a_source_file_naming_an_unknown_teacher_is_refused_before_any_work(tmp_path, ids, extra, needle):
    import subprocess
    import sys

    src = tmp_path / "hands.jsonl"
    recs = [{"hand": "1m 2m 3m 4m 5m 6m 7m 8m 9m 1p 2p 3p 5s", "winning_tiles": ["5s"]},
            {"hand": "1m 1m 1m 2m 3m 4m 5m 6m 7m 8m 9m 9m 9m", "winning_tiles": ["1m", "2m", "3m", "4m", "5m", "6m",
                                                                                  "7m", "8m", "9m"]}]
    src.write_text("".join(json.dumps({**r, **({"teacher_id": t} if t else {})}) + "\n" for r, t in zip(recs, ids)))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "stratos", "+task=mahjong", f"task.source={src}", "pipeline.stages=[plan]",
                        "+teacher@teachers.low=task_engine", "route.by=column", *extra, f"paths.output_root={out}"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if needle is None:  # every row names a listed teacher or falls to route.default
        assert r.returncode == 0, r.stderr[-800:]
        return
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("stratos: error: "), r.stderr[-800:]
    assert needle.format(src=src) in lines[0], lines[0]
    assert not out.exists() or not any(out.rglob("*"))


def test_a_lower_route_budget_moves_slices_to_the_cheaper_teacher_and_one_below_the_cheapest_stops_the_stage(
        tmp_path, teacher_dirs):
    """The rules engine (always right) at $1000 per million tokens, a tiny white-box lm (rarely right) priced by
    compute on this machine. A budget below the cheapest routing: refused before training, the distill stage leaves
    nothing behind. No budget: the most accurate routing. A budget between the cheapest routing and that one: some
    slices move to the lm and the teacher work fits."""
    from stratos.distill.routing import route_teachers
    from stratos.models.teachers import RoutedTeacher, build_members
    from stratos.tasks import build_task

    over = ["+teacher@teachers.engine=task_engine", "+teacher@teachers.lm=tiny_teacher",
            f"teachers.lm.name_or_path={teacher_dirs[0]}", "teachers.lm.max_new_tokens=16", "strategy=alignment",
            "route.by=auto", "route.probe_n=2", "++route.usd_per_mtok={engine: 1000}", "trainer.max_steps=2",
            "task.curriculum=[]"]  # 2 steps: too few for the default curriculum's two stages
    with pytest.raises(UserError, match=r"invalid value for 'route.budget_usd': 1e-12 \(allowed: route.budget_usd >= ") as e:
        run(tmp_path, [*over, "route.budget_usd=1e-12"])
    d = tmp_path / "run" / "distill"
    assert "\n" not in str(e.value) and not d.exists() and (d.parent / "data" / "manifest.json").exists()

    cfg = compose_cfg([*SMALL, *over], tmp_path)  # no budget: the stage's own routing step, without training
    train, val = ([json.loads(x) for x in (d.parent / "data" / f).read_text().splitlines()]
                  for f in ("train.jsonl", "val.jsonl"))
    free = route_teachers(cfg, build_task(cfg.task), RoutedTeacher(build_members(cfg)), train, val).as_dict()
    cost = free["cost"]
    assert cost["budget_usd"] is None and cost["usd"] == cost["unconstrained_usd"] > cost["cheapest_usd"] > 0
    assert cost["teachers"]["engine"]["priced_by"] == "tokens" and cost["teachers"]["lm"]["priced_by"] == "compute"

    budget = (cost["usd"] + cost["cheapest_usd"]) / 2
    run(tmp_path, [*over, f"route.budget_usd={budget}"])
    tight = json.loads((d / "routing.json").read_text())
    assert tight["assignment"] != free["assignment"] and tight["cost"]["unconstrained"] == free["assignment"]
    assert tight["cost"]["usd"] <= budget < tight["cost"]["unconstrained_usd"] == cost["usd"]
    assert tight["rows"]["lm"] > free["rows"].get("lm", 0)
    strategy = json.loads((d / "strategy.json").read_text())["routing"]
    assert strategy["budget_usd"] == budget and strategy["usd"] == tight["cost"]["usd"]
    metrics = json.loads((d / "manifest.json").read_text())["metrics"]
    assert {k for k in metrics if k.startswith("distill/teacher_share/")} == {
        f"distill/teacher_share/{t}" for t in tight["token_shares"]}


def test_on_policy_kd_with_several_white_box_teachers_scores_each_rollout_by_its_rows_teacher(tmp_path, teacher_dirs):
    run_dir = run(tmp_path, two(teacher_dirs, "route.by=slice", "++route.slices={0-1: low, 2+: high}",
                                "strategy.alignment.mode=logit", "strategy.alignment.on_policy.rate=0.5",
                                "strategy.alignment.on_policy.max_new_tokens=8"))
    d = run_dir / "distill"
    strategy = json.loads((d / "strategy.json").read_text())
    assert strategy["on_policy"]["scorer"] == "logits" and strategy["on_policy"]["rate"] == 0.5
    assert not any("on-policy KD refused" in r for r in strategy.get("refused", []))
    metrics = json.loads((d / "manifest.json").read_text())["metrics"]
    assert 0 < metrics["distill/on_policy/share"] < 1 and metrics["distill/on_policy/sampled_tokens"] > 0
    assert metrics["distill/teacher_share/low"] + metrics["distill/teacher_share/high"] == pytest.approx(1, abs=1e-3)
    header = next(iter((d / "logs").glob("version_*/metrics.csv"))).read_text().splitlines()[0]
    assert "train/rollout_kd" in header


def test_on_policy_with_several_teachers_needs_every_one_white_box(tmp_path, teacher_dirs):
    cfg = compose_cfg([*SMALL, "+teacher@teachers.low=task_engine", "+teacher@teachers.high=tiny_teacher",
                       f"teachers.high.name_or_path={teacher_dirs[1]}", "strategy.alignment.on_policy.rate=0.5"],
                      tmp_path)
    with pytest.raises(UserError, match="0 with several teachers unless every one is white-box"):
        validate(cfg)
