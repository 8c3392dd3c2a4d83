"""A stand-in for `transformers`, used by bench/sd_peer.py only when the real sources are absent.

peft 0.10.0 imports transformers at import time (for type checks and the Auto* factories it never uses here), and
the peer builds a CLIP text encoder so that both sides hold the same resident model. This package gives those names
and a CLIP text transformer with transformers' structure and parameter shapes (token and position embeddings, pre-LN
encoder layers with q/k/v/out projections and a two-layer MLP, final layer norm, causal attention). The encoder is
never timed on either side; nothing else of transformers is used by the measured operations (UNet, LoRA, VAE).
"""
import json

import torch
from torch import nn

__version__ = "0.0-stand-in"


class PreTrainedModel(nn.Module):
    """Only an isinstance target for peft."""


def _unused(name):
    class Unused:
        def __init__(self, *_a, **_k):
            raise RuntimeError(f"transformers stand-in: {name} is not available")

        @classmethod
        def from_pretrained(cls, *_a, **_k):
            raise RuntimeError(f"transformers stand-in: {name} is not available")
    Unused.__name__ = name
    return Unused


AutoModel = _unused("AutoModel")
AutoModelForCausalLM = _unused("AutoModelForCausalLM")
AutoModelForQuestionAnswering = _unused("AutoModelForQuestionAnswering")
AutoModelForSeq2SeqLM = _unused("AutoModelForSeq2SeqLM")
AutoModelForSequenceClassification = _unused("AutoModelForSequenceClassification")
AutoModelForTokenClassification = _unused("AutoModelForTokenClassification")
AutoModelForFeatureExtraction = _unused("AutoModelForFeatureExtraction")
AutoTokenizer = _unused("AutoTokenizer")


class CLIPTextConfig:
    def __init__(self, **cfg):
        self.vocab_size = cfg.get("vocab_size", 49408)
        self.hidden_size = cfg.get("hidden_size", 512)
        self.intermediate_size = cfg.get("intermediate_size", 2048)
        self.num_hidden_layers = cfg.get("num_hidden_layers", 12)
        self.num_attention_heads = cfg.get("num_attention_heads", 8)
        self.max_position_embeddings = cfg.get("max_position_embeddings", 77)
        self.hidden_act = cfg.get("hidden_act", "quick_gelu")
        self.layer_norm_eps = cfg.get("layer_norm_eps", 1e-5)

    @classmethod
    def from_json_file(cls, path):
        with open(path) as f:
            return cls(**json.load(f))


def _activation(name):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return nn.functional.gelu
    raise ValueError(f"transformers stand-in: hidden_act {name!r} not supported")


class _Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c.num_attention_heads
        self.q_proj = nn.Linear(c.hidden_size, c.hidden_size)
        self.k_proj = nn.Linear(c.hidden_size, c.hidden_size)
        self.v_proj = nn.Linear(c.hidden_size, c.hidden_size)
        self.out_proj = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x):
        b, n, d = x.shape
        h = self.heads

        def split(t):
            return t.view(b, n, h, d // h).transpose(1, 2)
        q, k, v = split(self.q_proj(x)) * (d // h) ** -0.5, split(self.k_proj(x)), split(self.v_proj(x))
        scores = q @ k.transpose(-1, -2)
        causal = torch.full((n, n), float("-inf"), dtype=scores.dtype).triu(1)
        out = (scores + causal).softmax(-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class _Mlp(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Linear(c.hidden_size, c.intermediate_size)
        self.fc2 = nn.Linear(c.intermediate_size, c.hidden_size)
        self.act = _activation(c.hidden_act)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class _Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = _Attention(c)
        self.layer_norm1 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlp = _Mlp(c)
        self.layer_norm2 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class _Output:
    def __init__(self, last_hidden_state):
        self.last_hidden_state = last_hidden_state


class CLIPTextModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embedding = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.layers = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))
        self.final_layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, input_ids):
        x = self.token_embedding(input_ids) + self.position_embedding(torch.arange(input_ids.shape[1]))
        for layer in self.layers:
            x = layer(x)
        return _Output(self.final_layer_norm(x))
