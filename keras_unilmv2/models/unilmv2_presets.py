"""The UniLMv2 preset registry.

Each entry gives the architecture (so `from_preset(name, load_weights=False)`
builds offline) and where the weights come from. Microsoft's released
checkpoints are PyTorch files: they are downloaded once by the user and
converted with `tools/convert_unilmv2_checkpoint.py`; presets shipped with
this repository live in its `presets/` folder.
"""

_CKPT = "https://unilm.blob.core.windows.net/ckpt/"


def _released(name, lowercase, description, params, **config):
    return {
        "metadata": {
            "description": description,
            "params": params,
            "path": "unilmv2",
        },
        "config": config,
        "source": {
            "checkpoint": f"{_CKPT}{name}.bin",
            "config": f"{_CKPT}{name}-config.json",
            "vocabulary": f"{_CKPT}{name}-vocab.txt",
            "lowercase": lowercase,
        },
    }


_BASE = dict(
    num_layers=12,
    num_heads=12,
    hidden_dim=768,
    intermediate_dim=3072,
    max_sequence_length=512,
    num_segments=2,
    max_relative_position=128,
    layer_norm_epsilon=1e-12,
    dropout=0.1,
)
_LARGE = dict(_BASE, num_layers=24, num_heads=16, hidden_dim=1024, intermediate_dim=4096)

backbone_presets = {
    "unilmv2_base_en_uncased": _released(
        "unilm2-base-uncased",
        lowercase=True,
        description=(
            "UniLMv2 base: 12 layers, 768 hidden, 12 heads, relative-position "
            "bias; trained on 160GB of uncased English text (Microsoft)."
        ),
        params=110_000_000,
        vocabulary_size=30522,
        relative_position_buckets=32,
        **_BASE,
    ),
    "unilmv2_large_en_uncased": _released(
        "unilm2-large-uncased",
        lowercase=True,
        description=(
            "UniLMv2 large: 24 layers, 1024 hidden, 16 heads, relative-position "
            "bias; uncased English (Microsoft)."
        ),
        params=340_000_000,
        vocabulary_size=30522,
        relative_position_buckets=32,
        **_LARGE,
    ),
    "unilmv2_large_en_cased": _released(
        "unilm2-large-cased",
        lowercase=False,
        description=(
            "UniLMv2 large: 24 layers, 1024 hidden, 16 heads, relative-position "
            "bias; cased English (Microsoft). The converter takes the exact "
            "vocabulary size from the downloaded config."
        ),
        params=340_000_000,
        vocabulary_size=28996,
        relative_position_buckets=32,
        **_LARGE,
    ),
    "unilm1.2_base_en_uncased": _released(
        "unilm1.2-base-uncased",
        lowercase=True,
        description=(
            "unilm1.2 base: UniLMv2 without the relative-position bias "
            "(12 layers, 768 hidden, 12 heads), uncased English (Microsoft)."
        ),
        params=110_000_000,
        vocabulary_size=30522,
        relative_position_buckets=0,
        **_BASE,
    ),
}
