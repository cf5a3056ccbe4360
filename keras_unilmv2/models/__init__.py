"""Models of the UniLMv2 family: backbone, tokenizer, preprocessors, tasks."""

from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
