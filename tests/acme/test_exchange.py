import os

from stratos.acme.exchange import Exchange, inbox, node_dir, read_ledger, totals


def test_transfers_land_in_inboxes_and_every_byte_is_in_the_ledger(tmp_path):
    root = "memory://acme-ex"
    ex = Exchange(root)
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "a.bin").write_bytes(b"x" * 100)
    (model / "sub" / "b.json").write_bytes(b"{}")
    ex.send_dir("cloud", "edge:phone", "backbone", str(model), kind="model")
    ex.forward("edge:phone", "device:phone-0", "backbone", kind="model")
    ex.send_json("device:phone-0", "edge:phone", "s.json", {"k": 1}, kind="summary")
    Exchange(root, scenario="centralised").send_bytes("device:phone-0", "edge:phone", "raw", b"r" * 50, kind="data")
    assert ex.read_json("edge:phone", "s.json") == {"k": 1}
    with ex.local_dir("device:phone-0", "backbone") as local:  # memory:// -> a local temp copy ...
        assert open(os.path.join(local, "sub", "b.json")).read() == "{}"
    assert not os.path.exists(local)  # ... removed when the block ends (no temp folder left per job)
    with Exchange(f"file://{tmp_path}/ex").local_dir("cloud", "nothing") as here:  # local storage: the inbox itself
        assert here == inbox(str(tmp_path / "ex"), "cloud", "nothing")
    t = totals(read_ledger(root))
    assert t["acme"]["bytes"] == 102 + 102 + len(b'{"k": 1}')
    assert t["acme"]["by_boundary"] == {"cloud->edge": 102, "edge->device": 102, "device->edge": 8}
    assert t["centralised"] == {"bytes": 50, "by_boundary": {"device->edge": 50}, "by_kind": {"data": 50}}
    assert inbox(root, "device:phone-0", "x") == "memory://acme-ex/device/phone-0/inbox/x"
    assert node_dir(root, "cloud") == "memory://acme-ex/cloud/main"
