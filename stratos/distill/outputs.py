"""The distill stage's artifact contract: the names of the files it writes in its directory.

Readers (evaluate, export, report) use these names with the stage's manifest (`manifest.path(NAME)`),
so no stage imports another stage's module, and a name is written in one place.
"""

MODEL_DIR = "model"  # merged HF checkpoint + tokenizer (save_pretrained; loads in transformers 4.x and 5.x)
ADAPTER_DIR = "adapter"  # LoRA students: the adapter alone (multi-LoRA serving) ...
BASE_MODEL_DIR = "base_model"  # ... and the base it applies to
CHECKPOINTS_DIR = "checkpoints"  # Lightning checkpoints step_{step:06d}.ckpt + last.ckpt (resume)
STRATEGY_JSON = "strategy.json"  # the decision: name, mode, reason, teacher probe accuracy, features, refusals
PREFLIGHT_JSON = "preflight.json"  # vocab / context / memory checks
TRAIN_LOG = "train_log.jsonl"  # loss curve (step, loss, lr, ce / kd parts)
TOKEN_KD_JSON = "token_kd.json"  # black-box teacher: whether its top-k logprobs became token-level KD targets
TOPK_STORE_JSON = "topk_store.json"  # offline teacher: where its top-k log-probs live, bytes/token
