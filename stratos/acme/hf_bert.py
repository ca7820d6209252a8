"""BERT whose attention keeps its head size when heads are removed (self-contained: imports only transformers).

Stock `BertSelfAttention` derives the head size as hidden_size / num_attention_heads, so a BERT
with 3 of its 4 heads cannot be described by a `BertConfig` (and transformers 5 dropped
`pruned_heads`). `StratosBertConfig` adds `attention_head_size`; with k heads the Q/K/V
projections are (k * head_size, hidden) and the output projection (hidden, k * head_size).
At full width the weights are exactly a stock BERT's, so pretrained checkpoints (MiniLM) load.

This file is copied next to every exported sub-network (`register_for_auto_class`), so
`AutoModelForSequenceClassification.from_pretrained(dir, trust_remote_code=True)` loads it
without Stratos installed; inside Stratos the classes are registered with the Auto* factories.
"""

from __future__ import annotations

from torch import nn
from transformers import (AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification,
                          BertConfig)
from transformers.models.bert.modeling_bert import (BertForMaskedLM, BertForSequenceClassification, BertModel,
                                                    BertSelfAttention)


class StratosBertConfig(BertConfig):
    model_type = "stratos_bert"

    def __init__(self, attention_head_size: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.attention_head_size = int(attention_head_size or self.hidden_size // self.num_attention_heads)
        # BertSelfAttention only checks hidden % heads when `embedding_size` is absent; the check
        # does not apply here (head size is explicit), and BertEmbeddings never reads this field.
        self.embedding_size = self.hidden_size


class StratosBertSelfAttention(BertSelfAttention):
    """Stock forward; sizes from `config.attention_head_size` instead of hidden / heads."""

    def __init__(self, config, is_causal=False, layer_idx=None):
        nn.Module.__init__(self)
        self.config = config
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.attention_head_size
        self.all_head_size = self.num_attention_heads * self.attention_head_size  # may be < hidden
        self.scaling = self.attention_head_size**-0.5
        self.query = nn.Linear(config.hidden_size, self.all_head_size)
        self.key = nn.Linear(config.hidden_size, self.all_head_size)
        self.value = nn.Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.is_decoder = config.is_decoder
        self.is_causal = is_causal
        self.layer_idx = layer_idx


class StratosBertModel(BertModel):
    config_class = StratosBertConfig

    def __init__(self, config: StratosBertConfig, add_pooling_layer: bool = True):
        super().__init__(config, add_pooling_layer=add_pooling_layer)
        for i, layer in enumerate(self.encoder.layer):
            att = layer.attention
            att.self = StratosBertSelfAttention(config, is_causal=config.is_decoder, layer_idx=i)
            att.output.dense = nn.Linear(att.self.all_head_size, config.hidden_size)  # (hidden, k*hs)
        self.post_init()  # initialise the swapped-in projections like the rest


class StratosBertForSequenceClassification(BertForSequenceClassification):
    config_class = StratosBertConfig

    def __init__(self, config: StratosBertConfig):
        super().__init__(config)
        self.bert = StratosBertModel(config)
        self.post_init()


class StratosBertForMaskedLM(BertForMaskedLM):
    config_class = StratosBertConfig

    def __init__(self, config: StratosBertConfig):
        super().__init__(config)
        self.bert = StratosBertModel(config, add_pooling_layer=False)
        self.post_init()


def to_stratos_config(config: BertConfig) -> StratosBertConfig:
    """A stock BertConfig (e.g. MiniLM's) as a StratosBertConfig with the same weights' shapes."""
    d = config.to_dict()
    for k in ("model_type", "architectures", "transformers_version", "auto_map"):
        d.pop(k, None)
    return StratosBertConfig(**d)


def register() -> None:
    """Auto* factories know the classes (idempotent); saved folders also carry this file (auto_map)."""
    try:
        AutoConfig.register("stratos_bert", StratosBertConfig)
    except ValueError:  # already registered
        return
    AutoModel.register(StratosBertConfig, StratosBertModel)
    AutoModelForSequenceClassification.register(StratosBertConfig, StratosBertForSequenceClassification)
    AutoModelForMaskedLM.register(StratosBertConfig, StratosBertForMaskedLM)
    StratosBertConfig.register_for_auto_class()
    StratosBertModel.register_for_auto_class("AutoModel")
    StratosBertForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")


register()
