"""Models of the UniLMv2 family: backbone, tokenizer, preprocessors, tasks."""

from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer

# keras-hub finds the tokenizer (and, later, preprocessors and tasks) of a
# preset through `backbone_cls`.
UniLMv2Tokenizer.backbone_cls = UniLMv2Backbone
