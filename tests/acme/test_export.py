import torch

from stratos.acme.backbone import encode
from stratos.acme.elastic import extract
from stratos.acme.export import export_onnx, load_subnet, onnx_parity, save_subnet


def test_every_subnetwork_round_trips_through_save_pretrained_and_onnx(model, tok, enc, tmp_path):
    sub = extract(model, 0.5, 0.75)
    n_bytes = save_subnet(sub, tok, str(tmp_path / "hf"))
    assert n_bytes > 0
    back, tok2 = load_subnet(str(tmp_path / "hf"))
    assert back.config.num_hidden_layers == 3 and back.config.intermediate_size == 32
    assert back.config.stratos_elastic == {"width": 0.5, "depth": 0.75, "layers": [0, 1, 2]}
    with torch.no_grad():
        torch.testing.assert_close(back(**enc).logits, sub(**enc).logits)
    export_onnx(back, str(tmp_path / "m.onnx"), {k: v[:4] for k, v in enc.items()})
    other = encode(tok2, ["1m 1m", "9s", "1z 2z 3z 4z 5z 6z 7z 1m 2m"], 32)  # new batch size and length, padded
    assert onnx_parity(back, str(tmp_path / "m.onnx"), [{k: v[:4] for k, v in enc.items()}, other]) < 1e-4
