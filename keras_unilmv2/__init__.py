"""keras-unilmv2: UniLMv2 (pseudo-masked language models) for Keras 3.

The public API. Set `KERAS_BACKEND` to `tensorflow`, `jax` or `torch` before
importing Keras.
"""

from keras_unilmv2 import layers
from keras_unilmv2.models import *  # noqa: F401,F403
from keras_unilmv2.version import __version__
