"""Models of the UniLMv2 family: backbone, tokenizer, preprocessors, tasks."""

from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_masked_lm import UniLMv2MaskedLM
from keras_unilmv2.models.unilmv2_masked_lm_preprocessor import (
    UniLMv2MaskedLMPreprocessor,
)
from keras_unilmv2.models.unilmv2_pmlm import UniLMv2PMLM
from keras_unilmv2.models.unilmv2_pmlm_preprocessor import UniLMv2PMLMPreprocessor
from keras_unilmv2.models.unilmv2_question_answerer import UniLMv2QuestionAnswerer
from keras_unilmv2.models.unilmv2_question_answerer_preprocessor import (
    UniLMv2QuestionAnswererPreprocessor,
)
from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2LabelSmoothingLoss
from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2Seq2SeqLM
from keras_unilmv2.models.unilmv2_seq2seq_lm import extend_position_embeddings
from keras_unilmv2.models.unilmv2_seq2seq_lm_preprocessor import (
    UniLMv2Seq2SeqLMPreprocessor,
)
from keras_unilmv2.models.unilmv2_text_classifier import UniLMv2TextClassifier
from keras_unilmv2.models.unilmv2_text_classifier_preprocessor import (
    UniLMv2TextClassifierPreprocessor,
)
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer

# keras-hub finds the tokenizer of a preset through `backbone_cls`.
UniLMv2Tokenizer.backbone_cls = UniLMv2Backbone
from keras_unilmv2.models.unilmv2_presets import backbone_presets
from keras_unilmv2.utils.preset_utils import register_presets

register_presets(backbone_presets)
