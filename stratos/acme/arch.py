"""Where attention heads and FFN neurons live in each supported HF architecture.

ACME's width slicing needs to know, per layer, which weight rows/columns belong to attention
head h and to FFN neuron n. A `Layout` records that for one family; everything else
(importance, reordering, slicing, export) is written once against it.

Heads are handled as key/value *groups* so grouped-query attention works unchanged: group g owns
kv head g and q heads g*G .. (g+1)*G - 1 with G = heads / kv_heads (G = 1 for multi-head
attention). Width w keeps round(w * kv_heads) whole groups and round(w * intermediate) neurons.

Tensor layout (nn.Linear weight is (out, in)):
  q rows  : (heads * head_dim, hidden)      rows of q head h = [h*hd, (h+1)*hd)
  kv rows : (kv_heads * head_dim, hidden)   rows of group g  = [g*hd, (g+1)*hd)
  o cols  : (hidden, heads * head_dim)      cols of q head h = [h*hd, (h+1)*hd)
  ffn rows: (intermediate, hidden)          row n = neuron n   (BERT intermediate, llama gate/up)
  ffn cols: (hidden, intermediate)          col n = neuron n   (BERT output, llama down)
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PretrainedConfig, PreTrainedModel

from stratos.errors import UserError


@dataclass(frozen=True)
class Layout:
    family: str
    layer_prefix: str  # parameter-name prefix before the layer index
    q_rows: tuple[str, ...]
    kv_rows: tuple[str, ...]
    o_cols: tuple[str, ...]
    ffn_rows: tuple[str, ...]
    ffn_cols: tuple[str, ...]
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    layers: int

    @property
    def group(self) -> int:
        """q heads per kv head."""
        return self.heads // self.kv_heads

    def layer_name(self, i: int, module: str) -> str:
        return f"{self.layer_prefix}.{i}.{module}"


def layout_of(config: PretrainedConfig) -> Layout:
    """Layout for a model config; UserError for architectures ACME does not know."""
    mt = config.model_type
    if mt in ("bert", "stratos_bert"):
        hd = int(getattr(config, "attention_head_size", config.hidden_size // config.num_attention_heads))
        return Layout(
            family="bert", layer_prefix="bert.encoder.layer",
            q_rows=("attention.self.query", "attention.self.key", "attention.self.value"), kv_rows=(),
            o_cols=("attention.output.dense",), ffn_rows=("intermediate.dense",), ffn_cols=("output.dense",),
            heads=config.num_attention_heads, kv_heads=config.num_attention_heads, head_dim=hd,
            intermediate=config.intermediate_size, layers=config.num_hidden_layers)
    if mt in ("llama", "qwen2", "mistral"):
        hd = int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
        kv = int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
        return Layout(
            family="llama", layer_prefix="model.layers",
            q_rows=("self_attn.q_proj",), kv_rows=("self_attn.k_proj", "self_attn.v_proj"),
            o_cols=("self_attn.o_proj",), ffn_rows=("mlp.gate_proj", "mlp.up_proj"), ffn_cols=("mlp.down_proj",),
            heads=config.num_attention_heads, kv_heads=kv, head_dim=hd,
            intermediate=config.intermediate_size, layers=config.num_hidden_layers)
    raise UserError(f"invalid value for 'acme.backbone': model_type {mt!r} "
                    "(allowed: bert/MiniLM-style encoders, llama/qwen2/mistral-style decoders)")


def layout_of_model(model: PreTrainedModel) -> Layout:
    return layout_of(model.config)


def _van_der_corput(k: int) -> float:
    """k-th term of the base-2 van der Corput sequence: 0, 1/2, 1/4, 3/4, 1/8, 5/8, ..."""
    x, denom = 0.0, 1.0
    while k:
        denom *= 2
        k, bit = divmod(k, 2)
        x += bit / denom
    return x


def layer_priority(n_layers: int) -> list[int]:
    """All layers, most-kept first: floor(vdC(k) * L) without repeats (0, L/2, L/4, 3L/4, ...)."""
    order: list[int] = []
    k = 0
    while len(order) < n_layers:
        i = int(_van_der_corput(k) * n_layers)
        if i not in order:
            order.append(i)
        k += 1
    return order


def kept_layers(n_layers: int, depth: float) -> list[int]:
    """Layers kept at depth fraction `depth`: the first n = round(depth * L) of `layer_priority`, sorted.

    Always nested (a shallower sub-network's layers are a subset of a deeper one's, so the layers the
    small ones train are the big ones' too) and spread out: L=4 gives [0,1,2,3] > [0,1,2] > [0,2] > [0].
    """
    n = max(1, round(depth * n_layers))
    return sorted(layer_priority(n_layers)[:n])


def kept_units(total: int, width: float) -> int:
    return max(1, round(width * total))


def sub_config(config: PretrainedConfig, width: float, depth: float) -> PretrainedConfig:
    """Config of the (width, depth) sub-network: fewer kv groups (+ their q heads), neurons, layers.

    Hidden size, vocabulary and head size are unchanged, so embeddings and norms are shared.
    """
    lay = layout_of(config)
    d = config.to_dict()
    groups = kept_units(lay.kv_heads, width)
    d["num_attention_heads"] = groups * lay.group
    d["intermediate_size"] = kept_units(lay.intermediate, width)
    keep = kept_layers(lay.layers, depth)
    d["num_hidden_layers"] = len(keep)
    if lay.family == "llama":
        d["num_key_value_heads"] = groups
        d["head_dim"] = lay.head_dim
        if d.get("layer_types"):
            d["layer_types"] = [d["layer_types"][i] for i in keep]
    else:
        d["attention_head_size"] = lay.head_dim
    d["stratos_elastic"] = {"width": float(width), "depth": float(depth), "layers": keep}
    for k in ("transformers_version", "auto_map"):
        d.pop(k, None)
    return type(config).from_dict(d)
