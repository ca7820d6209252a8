"""stratos.launch.sky: SkyPilot tasks for catalog rows, the bucket-URL rule, and where SkyPilot needs the network.

Tests that build SkyPilot objects skip (with the reason) only when `skypilot` is not importable
(`pip install 'stratos[cloud]'`). Without network, `instance_type_known` answers None and the tasks use
`accelerators`; with SkyPilot's catalog cached they use the exact instance type: both are asserted.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import shlex
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from stratos.errors import UserError
from stratos.launch import sky as L
from stratos.launch.command import stratos_command

needs_sky = pytest.mark.skipif(importlib.util.find_spec("sky") is None,
                               reason="skypilot is not installed (pip install 'stratos[cloud]')")

AWS = {"name": "aws/g5.xlarge/us-east-1", "region": "us-east-1", "gpu": "A10G", "gpu_count": 1, "price_hour": 1.006,
       "spot_hour": 0.42}
LAMBDA = {"name": "lambda/gpu_1x_a10/us-east-1", "region": "us-east-1", "gpu": "A10", "gpu_count": 1,
          "price_hour": 0.75}
RUNPOD = {"name": "runpod/rtx4090/eu-ro-1", "region": "eu-ro-1", "gpu": "RTX4090", "gpu_count": 1,
          "price_hour": 0.69, "spot_hour": 0.34}
GCP_T4 = {"name": "gcp/n1-standard-8+t4/us-central1", "region": "us-central1", "gpu": "T4", "gpu_count": 1,
          "price_hour": 0.73, "spot_hour": 0.25}
COREWEAVE = {"name": "coreweave/gd-8xh100ib/us-east-04", "region": "us-east-04", "gpu": "H100", "gpu_count": 8,
             "price_hour": 49.24}
RUN_DIR = "s3://stratos-runs/exp/run 1"
CMD = stratos_command(["+task=mahjong"], RUN_DIR, ["distill", "evaluate"])


def only_resources(task):
    (res,) = list(task.resources)
    return res


def round_trips(task) -> dict:
    """Task -> YAML dict -> Task -> YAML dict is stable (SkyPilot's own schema validates the dict)."""
    import sky

    cfg = task.to_yaml_config()
    again = sky.Task.from_yaml_config(copy.deepcopy(cfg)).to_yaml_config()  # from_yaml_config empties its input
    again.pop("_user_specified_yaml", None)
    assert again == cfg
    return cfg


def check_exact_or_accelerators(res, cloud: str, instance: str, accs: dict):
    """With SkyPilot's catalog readable the exact instance is used, else accelerators on the same cloud/region."""
    known = L.instance_type_known(cloud, instance)
    if known:
        assert res.instance_type == instance
    else:
        assert res.instance_type is None and res.accelerators == accs


# ---------------------------------------------------------------- no SkyPilot needed

@pytest.mark.parametrize("url", ["/tmp/runs/x", "outputs/exp/run", "file:///tmp/runs", "memory://x", "http://h/x"])
def test_local_run_dir_is_refused(url):
    with pytest.raises(UserError, match="a cloud run needs a bucket URL") as e:
        L.require_bucket(url)
    assert repr(url) in str(e.value) and "s3://" in str(e.value)


@pytest.mark.parametrize("url", ["s3://b/runs/x", "gs://b/x", "az://container/x", "abfs://c/x"])
def test_bucket_urls_pass(url):
    assert L.require_bucket(url) == url


def test_names_to_instances_and_clouds():
    assert L.instance_and_attached(AWS) == ("g5.xlarge", {})
    assert L.instance_and_attached(GCP_T4) == ("n1-standard-8", {"T4": 1})
    assert L.instance_and_attached({**AWS, "name": "azure/NC4as_T4_v3/eastus"}) == ("Standard_NC4as_T4_v3", {})
    assert L.instance_and_attached({**AWS, "name": "local"}) == (None, {})
    assert [L.sky_cloud_name(r) for r in (AWS, LAMBDA, RUNPOD, GCP_T4, COREWEAVE)] == \
        ["aws", "lambda", "runpod", "gcp", "kubernetes"]
    assert L.sky_cloud_name({**AWS, "provider": "Azure"}) == "azure"
    with pytest.raises(UserError, match="'servers.servers\\[\\].provider': 'oracle'"):
        L.sky_cloud_name({**AWS, "name": "oracle/x/y"})


def test_enabled_clouds_never_hangs():
    clouds, why = L.enabled_clouds(timeout_s=0.01)
    assert clouds == [] and why  # either "not installed" or "did not finish within 0.01 s"
    if importlib.util.find_spec("sky") is not None:
        assert why == "SkyPilot's credential check did not finish within 0.01 s"


# ---------------------------------------------------------------- SkyPilot objects

@needs_sky
def test_aws_row_spot_and_on_demand():
    spot = L.sky_task(AWS, CMD, RUN_DIR, "spot")
    res = only_resources(spot)
    assert repr(res.cloud) == "AWS" and res.region == "us-east-1" and res.use_spot is True
    check_exact_or_accelerators(res, "aws", "g5.xlarge", {"A10G": 1})
    assert round_trips(spot)["resources"]["use_spot"] is True
    assert only_resources(L.sky_task(AWS, CMD, RUN_DIR, "on_demand")).use_spot is False


@needs_sky
def test_lambda_row_has_no_spot_market():
    res = only_resources(L.sky_task(LAMBDA, CMD, RUN_DIR, "on_demand"))
    assert repr(res.cloud) == "Lambda" and res.region == "us-east-1" and res.use_spot is False
    check_exact_or_accelerators(res, "lambda", "gpu_1x_a10", {"A10": 1})
    with pytest.raises(UserError, match="'servers.pricing': 'spot' .*no spot market"):
        L.sky_task(LAMBDA, CMD, RUN_DIR, "spot")


@needs_sky
def test_runpod_row_uses_data_centre_as_zone():
    task = L.sky_task(RUNPOD, CMD, RUN_DIR, "spot")
    res = only_resources(task)
    assert repr(res.cloud) == "RunPod" and (res.region, res.zone) == ("RO", "EU-RO-1")
    assert res.accelerators == {"RTX4090": 1} and res.instance_type is None and res.use_spot is True
    assert round_trips(task)["resources"] == {"infra": "runpod/RO/EU-RO-1", "accelerators": {"RTX4090": 1},
                                              "use_spot": True}


@needs_sky
def test_gcp_attached_gpu_and_coreweave_on_kubernetes():
    res = only_resources(L.sky_task(GCP_T4, CMD, RUN_DIR, "on_demand"))
    assert repr(res.cloud) == "GCP" and res.region == "us-central1" and res.accelerators == {"T4": 1}
    kube = only_resources(L.sky_task(COREWEAVE, CMD, RUN_DIR, "on_demand"))
    assert repr(kube.cloud) == "Kubernetes" and kube.accelerators == {"H100": 8} and kube.region is None


@needs_sky
def test_task_runs_the_command_with_the_vm_python():
    task = L.sky_task(AWS, CMD, RUN_DIR, "spot", workdir=str(Path(__file__).resolve().parents[2]))
    argv = shlex.split(task.run)
    assert argv == ["python", *CMD[1:]]
    run_dir = [a for a in argv if a.startswith("hydra.run.dir=")][0]
    assert OverridesParser.create().parse_override(run_dir).value() == RUN_DIR
    assert task.setup == "pip install -e ." and task.workdir
    assert L.sky_task(AWS, CMD, RUN_DIR, "spot").setup == "pip install stratos"


@needs_sky
def test_sky_task_refuses_a_local_run_dir():
    with pytest.raises(UserError, match="'hydra.run.dir': '/tmp/runs': a cloud run needs a bucket URL"):
        L.sky_task(AWS, stratos_command([], "/tmp/runs", ["plan"]), "/tmp/runs", "spot")


@needs_sky
def test_skypilot_rejects_what_it_does_not_know():
    """The boundary: accelerator names are not checked offline, but the task schema is."""
    import sky

    with pytest.raises(Exception, match="unsupported field 'bogus'"):
        sky.Task.from_yaml_config({"run": "true", "resources": {"infra": "aws", "bogus": 1}})


@needs_sky
def test_enabled_clouds_uses_skypilots_check():
    clouds, why = L.enabled_clouds()
    assert set(clouds) <= set(L.CLOUDS.values())
    if not clouds:  # the machines this runs on have no cloud credentials
        assert why.startswith("no cloud is enabled for SkyPilot (")
        for cloud in ("aws", "azure", "gcp", "kubernetes", "lambda", "runpod"):
            assert f"{cloud}: " in why
    else:
        assert why.startswith("enabled: " + ", ".join(clouds))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_sky
@pytest.mark.slow
def test_dry_run_launch(tmp_path):
    """`launch(dry_run=True)` through SkyPilot's real client and a private local API server (own runtime dir
    and port, stopped afterwards). Without credentials or network it must fail with one clear RuntimeError."""
    port = free_port()
    script = textwrap.dedent(f"""
        import sky
        from stratos.launch import sky as L
        from stratos.launch.command import stratos_command
        row = {RUNPOD!r}
        task = L.sky_task(row, stratos_command([], {RUN_DIR!r}, ["plan"]), {RUN_DIR!r}, "on_demand")
        try:
            print("RESULT", L.launch(task, "stratos-dry-run", dry_run=True))
        except RuntimeError as e:
            print("ERROR", e)
        finally:
            sky.api_stop()
    """)
    env = {**os.environ, "HOME": str(tmp_path), "SKY_RUNTIME_DIR": str(tmp_path),
           "SKYPILOT_API_SERVER_LOCAL_PORT": str(port), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env,
                       stdin=subprocess.DEVNULL)
    out = [ln for ln in r.stdout.splitlines() if ln.startswith(("RESULT", "ERROR"))]
    assert r.returncode == 0 and out, r.stdout[-2000:] + r.stderr[-2000:]
    if "runpod" in L.enabled_clouds()[0]:
        assert out[0].startswith("RESULT"), out
    else:
        assert out[0].startswith("ERROR sky.launch of cluster 'stratos-dry-run' failed ("), out
    with socket.socket() as s:  # the private API server is gone
        assert s.connect_ex(("127.0.0.1", port)) != 0
