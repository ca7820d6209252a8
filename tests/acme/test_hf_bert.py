import os
import subprocess
import sys

import torch
from transformers import BertConfig, BertForSequenceClassification

from stratos.acme.export import save_subnet
from stratos.acme.hf_bert import StratosBertConfig, StratosBertForSequenceClassification, to_stratos_config


def test_full_width_stratos_bert_is_a_stock_bert(enc):
    torch.manual_seed(0)
    stock = BertForSequenceClassification(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=4, intermediate_size=64, num_labels=3)).eval()
    ours = StratosBertForSequenceClassification(to_stratos_config(stock.config)).eval()
    ours.load_state_dict(stock.state_dict(), strict=True)  # same names, same shapes
    ids = enc["input_ids"].clamp_max(63)
    with torch.no_grad():
        torch.testing.assert_close(ours(input_ids=ids, attention_mask=enc["attention_mask"]).logits,
                                   stock(input_ids=ids, attention_mask=enc["attention_mask"]).logits)


def test_head_count_need_not_divide_hidden(tok, enc, tmp_path):
    cfg = StratosBertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=3,
                            attention_head_size=8, intermediate_size=40, num_labels=2)
    m = StratosBertForSequenceClassification(cfg).eval()
    assert m.bert.encoder.layer[0].attention.self.query.weight.shape == (24, 32)
    assert m.bert.encoder.layer[0].attention.output.dense.weight.shape == (32, 24)
    # the saved folder loads with plain transformers (trust_remote_code), without importing stratos
    save_subnet(m, tok, str(tmp_path))
    assert os.path.exists(tmp_path / "hf_bert.py")
    code = ("import sys, torch; from transformers import AutoModelForSequenceClassification as A; "
            f"m = A.from_pretrained({str(tmp_path)!r}, trust_remote_code=True).eval(); "
            "x = torch.tensor([[2, 5, 6, 3]]); print(m(input_ids=x).logits.tolist()); "
            "assert 'stratos' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/tmp",
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    with torch.no_grad():
        ref = m(input_ids=torch.tensor([[2, 5, 6, 3]])).logits
    got = torch.tensor(eval(out.stdout.strip().splitlines()[-1]))
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
