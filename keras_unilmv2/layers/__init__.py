"""Layers of the UniLMv2 model family."""

from keras_unilmv2.layers.blockwise_mask_generator import (
    UniLMv2BlockwiseMaskGenerator,
)
from keras_unilmv2.layers.relative_position_bias import (
    UniLMv2RelativePositionBias,
)
from keras_unilmv2.layers.relative_position_bias import relative_position_bucket
from keras_unilmv2.layers.unilmv2_attention import UniLMv2Attention
from keras_unilmv2.layers.unilmv2_embedding_utils import UniLMv2AttentionBias
from keras_unilmv2.layers.unilmv2_embedding_utils import UniLMv2PositionIds
from keras_unilmv2.layers.unilmv2_lm_head import UniLMv2LMHead
from keras_unilmv2.layers.unilmv2_transformer_layer import (
    UniLMv2TransformerLayer,
)
