"""Distill stage: load -> prepare (decide + recipe) -> fit (Lightning) -> save.

Inputs: the data stage's rows as written (train.jsonl, val.jsonl with their verified rationales).
Outputs (names in stratos/distill/outputs.py):
  model/            merged HF checkpoint + tokenizer (save_pretrained; loads in transformers 4.x and 5.x)
  adapter/, base_model/   LoRA students: the adapter and its base, for multi-LoRA serving
  checkpoints/      Lightning checkpoints step_{step:06d}.ckpt + last.ckpt (a re-run resumes from last.ckpt)
  strategy.json     the decision: name, mode, reason, teacher probe accuracy, features, refusals
  preflight.json    vocab / context / memory checks
  logs/             the `logger` group's files (its `save_dir`); csv: logs/version_<N>/metrics.csv, the step
                    metrics (train/loss, train/lr, train/ce, train/kd, ..., val/loss), read by the report
  topk_store.json   offline teacher (strategy.alignment.top_k > 0): where its top-k log-probs live
  token_kd.json     black-box teacher: whether its top-k logprobs became token-level KD targets, or why not
  cross_tokenizer.json  cross-tokenizer logit KD: shared tokens, aligned share of the supervised tokens,
                    spans by kind (1:1, 1:n, n:1, n:m, eos)
  routing.json      several teachers (`teachers`, `route`): how rows were routed and why, the per-slice probe
                    table (route.by=auto), rows and supervised-token shares per teacher, and (route.by=auto) the
                    teacher work priced per slice against route.budget_usd (`cost`)
"""

from __future__ import annotations

import copy

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from stratos import artifacts
from stratos.artifacts import Manifest, StageContext
from stratos.data.outputs import TRAIN_JSONL, VAL_JSONL
from stratos.distill import outputs
from stratos.distill.examples import written_rationale
from stratos.distill.fit import FitResult, fit
from stratos.distill.recipe import TrainingRecipe
from stratos.errors import UserError
from stratos.models.tokenizer import save_tokenizer
from stratos.tasks import build_task


def build_teacher(cfg: DictConfig):
    if cfg.get("teachers"):  # several teachers behind one (stratos/models/teachers.py); rows routed in the recipe
        from stratos.models.teachers import RoutedTeacher, build_members

        return RoutedTeacher(build_members(cfg))
    if cfg.teacher.kind == "engine" and cfg.teacher.name not in ("task_engine", f"{cfg.task.name}_engine"):
        raise UserError(f"invalid value for 'teacher': {cfg.teacher.name!r} is the rules engine of another task "
                        f"(allowed for +task={cfg.task.name}: task_engine, or an hf or openai teacher)")
    return instantiate(cfg.teacher, _convert_="all")


def build_student(cfg: DictConfig, task, teacher, train_rows: list[dict]):
    """The student; a built one gets a tokenizer trained on what it will read and write."""
    texts = [r["question"] for r in train_rows] + [written_rationale(task, r) for r in train_rows[:2000]]
    white_box = "logits" in getattr(teacher, "capabilities", ())
    return instantiate(cfg.student, train_texts=texts + [task.corpus()], seed=int(cfg.seed), _convert_="all",
                       teacher_tokenizer=getattr(teacher, "tokenizer", None) if white_box else None)


def run(cfg: DictConfig, ctx: StageContext) -> Manifest:
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    task = build_task(cfg.task)
    data = ctx.input("data")
    train_rows, val_rows = (artifacts.read_jsonl(data.path(name)) for name in (TRAIN_JSONL, VAL_JSONL))
    teacher = build_teacher(cfg)
    student = build_student(cfg, task, teacher, train_rows)

    server = teacher_server(cfg, ctx)
    recipe = instantiate(cfg.strategy, _convert_="all").prepare(cfg, task, teacher, student, train_rows, val_rows,
                                                                  server=server)
    for name, record in recipe.records.items():
        ctx.write_json(name, record)

    logs_dir = ctx.local_dir(cfg.logger.save_dir) if cfg.logger.get("_target_") else None
    result = fit(cfg, ctx.local_dir(outputs.CHECKPOINTS_DIR), logs_dir, student, teacher, recipe)
    metrics = distill_metrics(recipe, result, student)  # before saving: merging a LoRA student changes its counts
    metrics["distill/batch_size"] = int(cfg.trainer.batch_size)  # the planner's tokens per example
    if result.trainer.is_global_zero:
        save_student(ctx, student)
    return ctx.manifest(metrics=metrics)


def teacher_server(cfg: DictConfig, ctx: StageContext):
    """Several teachers: the server route=auto prices their work on (plan/plan.json's run estimate when the plan
    stage ran, else this machine; stratos/distill/route_budget.py); None with one teacher."""
    if not cfg.get("teachers"):
        return None
    from stratos.distill.route_budget import server_rate
    from stratos.plan.record import read_plan

    return server_rate(cfg, read_plan(ctx.inputs))


def save_student(ctx: StageContext, student) -> None:
    if student.peft_method == "lora":  # for multi-LoRA serving: the adapter and its base, before merging
        student.model.save_pretrained(ctx.local_dir(outputs.ADAPTER_DIR))
        base = copy.deepcopy(student.model).unload()
        base.save_pretrained(ctx.local_dir(outputs.BASE_MODEL_DIR))
        save_tokenizer(student.tokenizer, ctx.local_dir(outputs.BASE_MODEL_DIR))
    out = ctx.local_dir(outputs.MODEL_DIR)
    student.merged().save_pretrained(out)
    save_tokenizer(student.tokenizer, out)


def distill_metrics(recipe: TrainingRecipe, result: FitResult, student) -> dict:
    trainer, stats, seconds = result.trainer, result.stats, result.seconds
    val_loss = trainer.callback_metrics.get("val/loss")
    metrics = {
        "distill/steps": int(trainer.global_step),
        "distill/seconds": round(seconds, 2),
        "distill/train/examples": len(recipe.train),
        "distill/train/corpus_examples": recipe.base_train.n_corpus,
        "distill/train/loss": stats.last_loss,
        "distill/val/loss": round(float(val_loss), 5) if val_loss is not None else None,
        "distill/tokens_per_s": round(stats.tokens / max(seconds, 1e-9), 1),
        "distill/padding_share": stats.padding_share,
        "distill/computed_padding_share": stats.computed_padding_share,
        "distill/length_slices": result.length_slices,
        "distill/student_params": student.n_params,
        "distill/trainable_params": student.n_trainable,
        "strategy/name": recipe.decision.name,
        "strategy/mode": recipe.decision.mode,
        "strategy/kept": recipe.stats.get("kept"),
        "strategy/rejected": recipe.stats.get("rejected"),
    }
    for i, (items, steps) in enumerate(result.curriculum):  # a staged curriculum: its phases, in training order
        metrics[f"distill/curriculum/phase{i}_items"] = items
        metrics[f"distill/curriculum/phase{i}_steps"] = steps
    token_kd = recipe.records.get(outputs.TOKEN_KD_JSON)
    if token_kd is not None:
        metrics["strategy/token_kd"] = token_kd["used"]
        metrics["strategy/token_kd_aligned"] = token_kd["aligned"]
    xtok = recipe.records.get(outputs.CROSS_TOKENIZER_JSON)
    if xtok is not None:
        metrics["strategy/xtok_shared_tokens"] = xtok["shared_tokens"]
        metrics["strategy/xtok_aligned_share"] = xtok["train"]["aligned_share"]
    routing = recipe.records.get(outputs.ROUTING_JSON)
    if routing is not None:
        metrics["strategy/route"] = routing["by"]
        metrics.update({f"distill/teacher_share/{t}": s for t, s in routing["token_shares"].items()})
    sampler = getattr(trainer.lightning_module, "on_policy", None)  # on-policy KD: rollouts of this launch
    if sampler is not None:
        metrics.update({f"distill/{k}": v for k, v in sampler.stats.as_metrics().items()})
    topk = recipe.records.get(outputs.TOPK_STORE_JSON)
    if topk:
        metrics["distill/topk/bytes_per_token"] = topk["train"]["bytes_per_token"]
        metrics["distill/topk/written"] = topk["train"]["written"]
        metrics["distill/topk/seconds"] = topk["train"]["seconds"] + topk["val"]["seconds"]
    return metrics
