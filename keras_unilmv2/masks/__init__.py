"""Attention-mask, position-id and segment-id rules of UniLMv2.

Every job of UniLMv2 (PMLM pre-training, pseudo-mask sequence-to-sequence
training, incremental decoding) runs the same encoder; the jobs differ only in
how the tokens are laid out, which position ids they get and which token may
attend to which. Those rules live here, each in one function whose docstring
states the rule in words:

- `keras_unilmv2.masks.seq2seq`: `seq2seq_inputs` (training layout
  `[source | target | pseudo]`), `seq2seq_decoding_position_ids` and
  `seq2seq_decoding_attention_mask` (decoding layout
  `[source | target slots]`).
- `keras_unilmv2.masks.pmlm`: `pmlm_layout`, `pmlm_attention_mask`,
  `pmlm_backbone_inputs`, `pmlm_model_inputs`, `PMLM_MODEL_INPUTS` and the
  slot kinds `CONTEXT_SLOT`, `PSEUDO_SLOT`, `ORIGINAL_SLOT`, `PADDING_SLOT`.

Each rule is written once against the `keras.ops` API and runs on one of two
implementations of it, chosen with `ops=`:

- `ops="tf"`: Keras' TensorFlow backend ops, whatever the current Keras
  backend is. Preprocessors use this; it works eagerly and inside `tf.data`
  / `tf.function` graphs.
- `ops="keras"`: `keras.ops` of the current backend, for use inside a model
  at run time (e.g. building a decoding mask in a `generate_step`).

Both give the same values.

Conventions:

- Masks are boolean `[..., query, key]` tensors: element `[..., i, j]` is
  `True` when query slot `i` may attend to key slot `j`. Cast them with
  `ops.cast(mask, "int32")` to get the 0/1 masks of the reference code.
- Id tensors are int32. Leading batch dimensions are optional: a function
  given `[S]`-shaped inputs returns one example, given `[B, S]` a batch
  (scalars such as real lengths broadcast the same way: `n` or `[B]`).
"""

from keras_unilmv2.masks.pmlm import CONTEXT_SLOT
from keras_unilmv2.masks.pmlm import ORIGINAL_SLOT
from keras_unilmv2.masks.pmlm import PADDING_SLOT
from keras_unilmv2.masks.pmlm import PMLM_MODEL_INPUTS
from keras_unilmv2.masks.pmlm import PSEUDO_SLOT
from keras_unilmv2.masks.pmlm import pmlm_attention_mask
from keras_unilmv2.masks.pmlm import pmlm_backbone_inputs
from keras_unilmv2.masks.pmlm import pmlm_layout
from keras_unilmv2.masks.pmlm import pmlm_model_inputs
from keras_unilmv2.masks.seq2seq import seq2seq_decoding_attention_mask
from keras_unilmv2.masks.seq2seq import seq2seq_decoding_position_ids
from keras_unilmv2.masks.seq2seq import seq2seq_inputs
