"""Whether a model's weights are here, checked before any work (never a download).

`weights_status` answers for one `name_or_path`: a model built from config needs none; a local
checkpoint directory needs its config.json; a hub id counts when the Hugging Face cache already
holds it. `check_obtainable` turns an absent one into the run's one-line error when nothing could
fetch it (HF_HUB_OFFLINE, or the hub does not answer), so the run stops before plan and data, not
minutes later inside `from_pretrained`.
"""

from __future__ import annotations

import os

HUB_PROBE_TIMEOUT_S = 3.0


def weights_status(name_or_path: str | None) -> tuple[bool, str]:
    """(present, where or why not) for a model's weights: built from config, local dir, or HF cache."""
    if name_or_path in (None, ""):
        return True, "built from config"
    path = os.path.expanduser(str(name_or_path))
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "config.json")):
            return True, f"local checkpoint {path}"
        return False, f"{path} has no config.json (not a Hugging Face checkpoint directory)"
    if path.startswith((".", "/", "~")) or path.count("/") > 1:  # a path, not an "org/name" hub id
        return False, f"no checkpoint directory at {path}"
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(path, "config.json")
    except Exception:  # an id the hub library rejects is simply not in the cache
        hit = None
    if isinstance(hit, str):
        return True, f"{path} in the Hugging Face cache"
    return False, f"weights for {path} not present (not a local directory, not in the Hugging Face cache)"


def hub_reachable(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a download could happen: not offline, and the hub endpoint answers."""
    import urllib.request

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout_s)
        return True
    except Exception:
        return False


def check_obtainable(key: str, name_or_path: str | None) -> None:
    """UserError (one line) when the weights are absent and cannot be downloaded from here."""
    from stratos.errors import UserError

    ok, why = weights_status(name_or_path)
    if ok:
        return
    if not os.path.isdir(os.path.expanduser(str(name_or_path))) and "not present" in why and hub_reachable():
        return  # a hub id this machine can download
    raise UserError(f"invalid value for '{key}': {name_or_path!r} ({why}; allowed: a local checkpoint directory, "
                    f"a model already in the Hugging Face cache, or a hub id when the hub can be reached)")
