"""Run the pipeline command on a cloud VM through SkyPilot (optional extra: `pip install 'stratos[cloud]'`).

    task = sky_task(row, stratos_command(overrides, "s3://bucket/runs/x", stages), "s3://bucket/runs/x", "spot",
                    workdir=repo_root)
    clouds, why = enabled_clouds()
    job_id, handle = launch(task, "stratos-x")

Where SkyPilot needs the network or credentials (README, "cloud runs"):
- `sky.Resources` with an `instance_type` reads SkyPilot's hosted catalog (fetched from GitHub into
  ~/.sky/catalogs, refreshed every 7 h); offline that raises, so `sky_task` asks first
  (`instance_type_known`) and falls back to `accelerators={gpu: count}`, which builds offline but is
  only checked by SkyPilot's optimizer at launch.
- `sky.launch`, even with `dryrun=True`, talks to a SkyPilot API server (started locally on first
  use) whose optimizer needs the catalog and at least one cloud with credentials.
- `enabled_clouds` runs SkyPilot's own credential check in a child process with a time limit.

Providers: aws, gcp, azure, lambda, runpod map to SkyPilot clouds of the same name. coreweave: SkyPilot
0.14.1 has no CoreWeave compute cloud (only its object storage), so its rows run on `kubernetes`, i.e.
a CoreWeave (CKS) cluster in the current kube context.
"""

from __future__ import annotations

import functools
import json
import shlex
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any, Mapping

from fsspec.core import split_protocol

from stratos.errors import UserError, bad_value

if TYPE_CHECKING:
    import sky

# Catalog provider -> SkyPilot cloud name.
CLOUDS = {"aws": "aws", "gcp": "gcp", "azure": "azure", "lambda": "lambda", "runpod": "runpod",
          "coreweave": "kubernetes"}
# Providers whose catalog instance names are SkyPilot instance types (runpod/coreweave names are not).
INSTANCE_CLOUDS = {"aws", "gcp", "azure", "lambda"}
# Stratos GPU names (stratos/plan/catalog.py GPU_SPECS) -> SkyPilot accelerator names where they differ.
SKY_GPUS = {"A100-40": "A100", "A100-80": "A100-80GB", "A100-80-PCIe": "A100-80GB", "H100-PCIe": "H100"}
# Object stores a VM and this machine can both reach (fsspec protocols).
BUCKET_PROTOCOLS = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oci", "cos")
CHECK_TIMEOUT_S = 60
CATALOG_TIMEOUT_S = 20

_CHECK_SCRIPT = r"""
import json, re, sys
from sky import check as sky_check
from sky.clouds import cloud as sky_cloud
from sky.utils import registry
clouds = sys.argv[1:]
cap = sky_cloud.CloudCapability.COMPUTE
try:
    found = sky_check.check_capability(cap, quiet=True, clouds=clouds)  # {workspace: [cloud, ...]}
    enabled = sorted({c.lower() for ws in found.values() for c in ws})
except SystemExit:  # SkyPilot exits when no cloud at all is enabled
    enabled = []
reasons = {}
for name in clouds:
    if name not in enabled:
        try:
            ok, why = registry.CLOUD_REGISTRY.from_str(name).check_credentials(cap)
        except Exception as e:  # a cloud's own check failing is itself the reason
            why = f"{type(e).__name__}: {e}"
        first = (why or "not enabled").strip().splitlines()[0]
        reasons[name] = re.split(r"\s*(?:Run the following|To configure)", first)[0].strip() or first
print("STRATOS-SKY-CHECK " + json.dumps({"enabled": enabled, "reasons": reasons}))
"""


def require_bucket(url: str, key: str = "hydra.run.dir") -> str:
    """`url` if it is an object-store URL; a local path raises UserError (the VM could not write it back)."""
    protocol, _ = split_protocol(str(url))
    if protocol not in BUCKET_PROTOCOLS:
        raise UserError(f"invalid value for '{key}': {url!r}: a cloud run needs a bucket URL that the VM writes "
                        f"and this machine reads (allowed: {', '.join(p + '://...' for p in BUCKET_PROTOCOLS)})")
    return str(url)


def sky_cloud_name(row: Mapping[str, Any]) -> str:
    """SkyPilot cloud for a catalog row (provider: the row's `provider`, else the name up to the first '/')."""
    provider = str(row.get("provider") or str(row["name"]).split("/")[0]).lower()
    if provider not in CLOUDS:
        raise bad_value("servers.servers[].provider", provider,
                        f"a provider SkyPilot can launch on: {', '.join(CLOUDS)}")
    return CLOUDS[provider]


def instance_and_attached(row: Mapping[str, Any]) -> tuple[str | None, dict[str, int]]:
    """Instance type from the row name "provider/instance/region" and any GPUs named after a '+'.

    `gcp/n1-standard-8+t4/...` -> ("n1-standard-8", {"T4": gpu_count}); Azure sizes get their
    `Standard_` prefix back. (None, {}) when the name has no instance part.
    """
    parts = str(row["name"]).split("/")
    if len(parts) < 3:
        return None, {}
    instance, _, attached = parts[1].partition("+")
    if sky_cloud_name(row) == "azure" and not instance.startswith("Standard_"):
        instance = "Standard_" + instance
    accs = {attached.upper(): int(row["gpu_count"])} if attached else {}
    return instance, accs


@functools.lru_cache(maxsize=None)
def instance_type_known(cloud: str, instance_type: str, timeout_s: float = CATALOG_TIMEOUT_S) -> bool | None:
    """Does SkyPilot's catalog list `instance_type` for `cloud`? None when the catalog cannot be read.

    SkyPilot downloads its catalog from GitHub on first use, with no time limit; offline it raises at
    once, behind a firewall that drops packets it could wait minutes. So the lookup runs in a daemon
    thread and counts as unknown after `timeout_s`.
    """
    from sky.utils import registry

    answer: list[bool | None] = [None]

    def look() -> None:
        try:
            answer[0] = bool(registry.CLOUD_REGISTRY.from_str(cloud).instance_type_exists(instance_type))
        except OSError:  # requests' ConnectionError is an OSError
            pass

    worker = threading.Thread(target=look, daemon=True, name=f"sky-catalog-{cloud}")
    worker.start()
    worker.join(timeout_s)
    return answer[0]


def _infra(cloud: str, row: Mapping[str, Any]) -> str:
    region = row.get("region")
    if cloud == "kubernetes" or not region:
        return cloud  # a kube context, not a region, says where
    if cloud == "runpod":
        # Catalog regions are RunPod data centres (eu-ro-1), SkyPilot's zones; the region is the country
        # (sky/catalog/data_fetchers/fetch_runpod.py REGION_ZONES: RO -> EU-RO-1, US -> US-CA-2, ...).
        zone = str(region).upper()
        country = zone.split("-")[0] if zone.startswith(("US-", "CA-")) else zone.split("-")[1]
        return f"runpod/{country}/{zone}"
    return f"{cloud}/{region}"


def sky_resources(row: Mapping[str, Any], pricing: str) -> "sky.Resources":
    """`sky.Resources` for a catalog row: the exact instance type when SkyPilot's catalog knows it, else
    `accelerators={gpu: count}` on the same cloud and region; `use_spot` for spot pricing."""
    import sky

    if pricing not in ("on_demand", "spot"):
        raise bad_value("servers.pricing", pricing, "on_demand, spot")
    if pricing == "spot" and row.get("spot_hour") is None:
        raise bad_value("servers.pricing", pricing, f"on_demand: {row['name']} has no spot market (no spot_hour)")
    cloud = sky_cloud_name(row)
    instance, attached = instance_and_attached(row)
    gpu = str(row.get("gpu", "cpu"))
    kw: dict[str, Any] = {"infra": _infra(cloud, row), "use_spot": pricing == "spot"}
    if cloud in INSTANCE_CLOUDS and instance and instance_type_known(cloud, instance):
        kw["instance_type"] = instance
        if attached:
            kw["accelerators"] = attached
    elif gpu.lower() != "cpu":
        kw["accelerators"] = {SKY_GPUS.get(gpu, gpu): int(row["gpu_count"])}
    elif row.get("cpus"):
        kw["cpus"] = f"{int(row['cpus'])}+"
    return sky.Resources(**kw)


def sky_task(row: Mapping[str, Any], command: list[str], run_dir_url: str, pricing: str,
             workdir: str | None = None, setup: str | None = None) -> "sky.Task":
    """A `sky.Task` that runs `command` (from `stratos_command`) on the server `row` describes.

    The run directory must be a bucket URL (checked here). The local interpreter path in `command[0]`
    means nothing on the VM, so the task runs `python`. `workdir` (a local checkout) is synced to the
    VM and installed with `pip install -e .`; without it the VM installs `stratos` from the index.
    """
    import sky

    require_bucket(run_dir_url)
    argv = ["python", *command[1:]] if command and command[0] == sys.executable else list(command)
    if setup is None:
        setup = "pip install -e ." if workdir else "pip install stratos"
    task = sky.Task(name="stratos", setup=setup, run=shlex.join(argv), workdir=workdir)
    task.set_resources(sky_resources(row, pricing))
    return task


def enabled_clouds(clouds: list[str] | None = None, timeout_s: float = CHECK_TIMEOUT_S) -> tuple[list[str], str]:
    """Clouds SkyPilot can launch on from here, and why the others cannot, in one line.

    Runs SkyPilot's own check (`sky.check.check_capability`, compute) in a child process with stdin
    closed and a time limit, so a cloud SDK that prompts or waits on the network cannot hang the CLI.
    """
    import importlib.util

    if importlib.util.find_spec("sky") is None:
        return [], "skypilot is not installed (pip install 'stratos[cloud]')"
    clouds = clouds or sorted(set(CLOUDS.values()))
    try:
        r = subprocess.run([sys.executable, "-c", _CHECK_SCRIPT, *clouds], capture_output=True, text=True,
                           timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return [], f"SkyPilot's credential check did not finish within {timeout_s:g} s"
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("STRATOS-SKY-CHECK ")]
    if r.returncode != 0 or not lines:
        return [], f"SkyPilot's credential check failed (rc={r.returncode}): {r.stderr.strip()[-300:]}"
    got = json.loads(lines[-1].split(" ", 1)[1])
    why = "; ".join(f"{c}: {w}" for c, w in sorted(got["reasons"].items()))
    if not got["enabled"]:
        return [], f"no cloud is enabled for SkyPilot ({why})"
    return got["enabled"], f"enabled: {', '.join(got['enabled'])}" + (f"; not enabled: {why}" if why else "")


def launch(task: "sky.Task", cluster_name: str, dry_run: bool = False, down: bool = True) -> tuple[Any, Any]:
    """`sky.launch` the task on a new cluster and stream its logs; returns SkyPilot's (job_id, handle).

    `down=True` tears the cluster down once the job ends (results live in the bucket). `dry_run` asks
    SkyPilot to plan without provisioning; that still needs its API server, catalog and an enabled cloud.
    Failures raise RuntimeError naming the cluster and SkyPilot's error.
    """
    import sky

    try:
        request_id = sky.launch(task, cluster_name=cluster_name, dryrun=dry_run, down=down)
        return sky.stream_and_get(request_id)
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise RuntimeError(f"sky.launch of cluster {cluster_name!r} failed ({type(e).__name__}): {first}") from e
