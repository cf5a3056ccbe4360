"""keras-unilmv2: UniLMv2 (pseudo-masked language models) for Keras 3.

The public API. Set `KERAS_BACKEND` to `tensorflow`, `jax` or `torch` before
importing Keras.
"""

from keras_unilmv2 import datasets
from keras_unilmv2 import layers
from keras_unilmv2 import masks
from keras_unilmv2 import metrics
from keras_unilmv2 import samplers
from keras_unilmv2.models import UniLMv2Backbone
from keras_unilmv2.models import UniLMv2LabelSmoothingLoss
from keras_unilmv2.models import UniLMv2MaskedLM
from keras_unilmv2.models import UniLMv2MaskedLMPreprocessor
from keras_unilmv2.models import UniLMv2PMLM
from keras_unilmv2.models import UniLMv2PMLMPreprocessor
from keras_unilmv2.models import UniLMv2QuestionAnswerer
from keras_unilmv2.models import UniLMv2QuestionAnswererPreprocessor
from keras_unilmv2.models import UniLMv2Seq2SeqLM
from keras_unilmv2.models import UniLMv2Seq2SeqLMPreprocessor
from keras_unilmv2.models import UniLMv2TextClassifier
from keras_unilmv2.models import UniLMv2TextClassifierPreprocessor
from keras_unilmv2.models import UniLMv2Tokenizer
from keras_unilmv2.models import extend_position_embeddings
from keras_unilmv2.version import __version__
