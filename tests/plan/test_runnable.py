"""Runnable checks: weights present, endpoints answering, servers reachable; never a download."""

from __future__ import annotations

import http.server
import threading

import numpy as np
import pytest
from omegaconf import OmegaConf

from stratos.plan.catalog import local_machine, table_from_rows
from stratos.plan.runnable import Runnable, endpoint_status, model_status, server_status


class _Models(http.server.BaseHTTPRequestHandler):
    code = 200

    def do_GET(self):  # noqa: N802
        self.send_response(self.code)
        self.end_headers()
        self.wfile.write(b'{"data": []}')

    def log_message(self, *a):
        pass


@pytest.mark.parametrize("code,up", [(200, True), (401, True), (503, False)])
def test_endpoint_status(code, up):
    handler = type("H", (_Models,), {"code": code})
    srv = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        ok, why = endpoint_status(f"http://127.0.0.1:{srv.server_port}/v1")
    finally:
        srv.shutdown()
    assert ok is up and str(code) in why


def test_endpoint_refused_is_not_runnable():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    ok, why = endpoint_status(f"http://127.0.0.1:{port}/v1", timeout_s=1.0)
    assert not ok and "unreachable" in why


def test_model_status_by_kind():
    engine = OmegaConf.create({"name": "task_engine", "kind": "engine"})
    assert model_status(engine, "teacher", []) == (True, "the task's own solver")
    api = OmegaConf.create({"name": "openai_endpoint", "kind": "openai", "base_url": None})
    ok, why = model_status(api, "teacher", ["teacher.base_url"])
    assert not ok and "teacher.base_url" in why
    hf = OmegaConf.create({"name": "q", "kind": "hf", "name_or_path": "no-org/absent-model"})
    assert not model_status(hf, "teacher", [])[0]
    student = OmegaConf.create({"name": "tiny_llama", "name_or_path": None})
    assert model_status(student, "student", [])[0]


def test_local_server_runs_missing_partition_does_not():
    rows = [local_machine(0.1), {"name": "slurm/nope-partition", "provider": "slurm", "region": "local", "gpu": "cpu",
                                 "gpu_count": 1, "price_hour": 0.05, "tflops": 0.1, "mem_bw_gbs": 5, "gpu_mem_gb": 8,
                                 "launcher": "slurm", "partition": "nope-partition"}]
    ok, why = server_status(table_from_rows(rows, "us-east"))
    assert ok[0] and "this machine" in why[0]
    assert not ok[1] and "nope-partition" in why[1]


def test_mask_and_needs():
    r = Runnable(server=np.array([True, False]), teacher=np.array([True]), student=np.array([True, False]),
                 server_why=["here", "needs credentials for aws"], teacher_why=["engine"],
                 student_why=["built", "weights absent"])
    X = {"server": np.array([0, 1, 0]), "teacher": np.array([0, 0, 0]), "student": np.array([0, 0, 1])}
    assert r.mask(X).tolist() == [True, False, False]
    assert r.needs(1, 0, 1) == ["needs credentials for aws", "weights absent"]
    assert r.needs(0, 0, 0) == []
