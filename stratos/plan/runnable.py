"""Which candidates can run from here, and why the others cannot.

The planner scores every candidate; only runnable ones are executed. A candidate is runnable when
all three of its parts are:

  server   local: this machine, always. slurm: `sinfo` shows the partition up (and the GPUs it
           needs). cloud: SkyPilot is installed and reports the provider enabled (credentials).
  student  weights obtainable without a download: built from config (`name_or_path: null`), a
           local checkpoint directory, or already in the Hugging Face cache.
  teacher  engine: always (the task's own solver). hf: weights as for a student. openai: the
           endpoint is configured and answers `GET <base_url>/models` within a few seconds.

Each check runs once per server / model (not per candidate) and returns a boolean column and the
reason in words, so the plan can say what the best non-runnable plan would take.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig

from stratos.models.weights import weights_status
from stratos.plan.catalog import ServerTable

PROBE_TIMEOUT_S = 3.0


@dataclass
class Runnable:
    server: np.ndarray  # (S,) bool
    teacher: np.ndarray  # (T,) bool
    student: np.ndarray  # (U,) bool
    server_why: list[str]
    teacher_why: list[str]
    student_why: list[str]

    def mask(self, X: dict[str, np.ndarray]) -> np.ndarray:
        """(N,) runnable candidates of X (index arrays)."""
        return self.server[X["server"]] & self.teacher[X["teacher"]] & self.student[X["student"]]

    def needs(self, s: int, t: int, u: int) -> list[str]:
        """What a candidate lacks, one phrase per part that is not runnable ([] when it runs)."""
        out = []
        for ok, why in ((self.server[s], self.server_why[s]), (self.teacher[t], self.teacher_why[t]),
                        (self.student[u], self.student_why[u])):
            if not ok:
                out.append(why)
        return out


def endpoint_status(base_url: str, timeout_s: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """An OpenAI-compatible endpoint answers `GET /models` (any HTTP answer below 500 means it is up)."""
    import urllib.error
    import urllib.request

    url = base_url.rstrip("/") + "/models"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return True, f"endpoint {base_url} answers ({r.status})"
    except urllib.error.HTTPError as e:
        if e.code < 500:
            return True, f"endpoint {base_url} answers ({e.code})"
        return False, f"endpoint {base_url} fails ({e.code})"
    except Exception as e:  # refused, DNS, timeout: not reachable from here
        return False, f"endpoint {base_url} unreachable ({type(e).__name__})"


def model_status(c: DictConfig, role: str, unset: list[str]) -> tuple[bool, str]:
    """Runnable check of one teacher or student option (its composed config)."""
    kind = str(c.get("kind", "hf")) if role == "teacher" else "hf"
    if unset:
        return False, f"{role} {c.name} needs {', '.join(unset)} set"
    if kind == "engine":
        return True, "the task's own solver"
    if kind == "openai":
        return endpoint_status(str(c.base_url))
    ok, why = weights_status(c.get("name_or_path"))
    return ok, f"{role} {c.name}: {why}"


def server_status(servers: ServerTable) -> tuple[np.ndarray, list[str]]:
    """Runnable check per catalog row (one `sinfo` per partition, one SkyPilot check in all)."""
    ok = np.zeros(len(servers), dtype=bool)
    why: list[str] = []
    clouds: tuple[list[str], str] | None = None
    for i in range(len(servers)):
        launcher = servers.launcher[i]
        if launcher == "local":
            ok[i], reason = True, "this machine (in-process)"
        elif launcher == "slurm":
            from stratos.launch.slurm import offers_gpus, partition_status

            up, reason, res = partition_status(str(servers.partition[i]))
            need = 0 if servers.gpu[i] == "cpu" else int(servers.gpu_count[i])
            if up and need:
                up, why = offers_gpus(res, need)
                reason = reason if up else f"partition {servers.partition[i]!r}: {why}"
            ok[i] = up
        else:
            if clouds is None:
                from stratos.launch.sky import enabled_clouds

                clouds = enabled_clouds()
            provider = str(servers.provider[i])
            ok[i] = provider in clouds[0]
            reason = (f"{provider} enabled in SkyPilot" if ok[i] else
                      f"needs credentials for {provider} ({clouds[1]})" if clouds[1] else
                      f"needs credentials for {provider} (sky check)")
        why.append(reason)
    return ok, why


def check(servers: ServerTable, teachers: list[tuple[DictConfig, list[str]]],
          students: list[tuple[DictConfig, list[str]]]) -> Runnable:
    """Runnable columns for a catalog and the zoo's (config, unset keys) per model."""
    s_ok, s_why = server_status(servers)
    t = [model_status(c, "teacher", unset) for c, unset in teachers]
    u = [model_status(c, "student", unset) for c, unset in students]
    return Runnable(server=s_ok, teacher=np.array([x[0] for x in t], dtype=bool),
                    student=np.array([x[0] for x in u], dtype=bool), server_why=s_why,
                    teacher_why=[x[1] for x in t], student_why=[x[1] for x in u])
