"""PMLM pre-training from plain text: the library behind `tools/pretrain_pmlm.py`.

Modules:

- `data`: reading corpora, held-out splits, in-memory training datasets.
- `streaming`: the constant-memory input of `--streaming` runs.
- `model`: the compiled PMLM model, its optimizer and masking preprocessor.
- `checkpoints`: crash-safe checkpoints and run settings (also used by
  `keras_unilmv2.utils.recipes`).
- `callbacks`: the Keras callbacks of a run and its training curves.
- `distributed`: device meshes and multi-process set-up.
- `trainer`: `pretrain()` and its `PretrainSettings`.

This package may import `keras_unilmv2.models`; the models never import it.

Example:
```python
from keras_unilmv2.pretraining import pretrain

metadata = pretrain(["corpus/"], "my_preset", steps=2000, batch_size=32)
```
"""

from keras_unilmv2.pretraining.checkpoints import RUN_SETTINGS_FILE
from keras_unilmv2.pretraining.checkpoints import check_run_settings
from keras_unilmv2.pretraining.checkpoints import latest_valid_checkpoint
from keras_unilmv2.pretraining.checkpoints import list_checkpoints
from keras_unilmv2.pretraining.checkpoints import save_checkpoint
from keras_unilmv2.pretraining.checkpoints import write_json_atomically
from keras_unilmv2.pretraining.data import read_texts
from keras_unilmv2.pretraining.data import split_heldout
from keras_unilmv2.pretraining.data import training_dataset
from keras_unilmv2.pretraining.model import build_pretraining_model
from keras_unilmv2.pretraining.model import pretraining_preprocessor
from keras_unilmv2.pretraining.streaming import pack_chunks
from keras_unilmv2.pretraining.streaming import streaming_dataset
from keras_unilmv2.pretraining.trainer import PretrainSettings
from keras_unilmv2.pretraining.trainer import pretrain
