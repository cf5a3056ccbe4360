"""keras-hub's own conformance checks (`keras_hub.src.tests.test_case.TestCase`)
run on the UniLMv2 classes, as keras-hub runs them on its model families:
serialization round trips, eager / `tf.data` / Grain agreement of the
preprocessing layers, variable lengths, compiled predict, mixed precision,
quantization, `fit`/`predict` of the tasks with and without split
preprocessing, and `.keras` saving.

The question answerer's preprocessor is not here: it maps character offsets
in Python (it documents that it cannot run inside `tf.data`), which these
checks require; its own tests cover it.
"""

import numpy as np
from keras_hub.src.tests.test_case import TestCase
from unilmv2_test_utils import fixture_path
from unilmv2_test_utils import random_inputs
from unilmv2_test_utils import tiny_backbone
from unilmv2_test_utils import tiny_backbone_kwargs

from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
from keras_unilmv2.models.unilmv2_masked_lm import UniLMv2MaskedLM
from keras_unilmv2.models.unilmv2_masked_lm_preprocessor import (
    UniLMv2MaskedLMPreprocessor,
)
from keras_unilmv2.models.unilmv2_text_classifier import UniLMv2TextClassifier
from keras_unilmv2.models.unilmv2_text_classifier_preprocessor import (
    UniLMv2TextClassifierPreprocessor,
)
from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer

TEXTS = ["the cat sat on the big red sun", "a dog is on the sun"]
# Four words each: with `mask_selection_length=4` and every token selected
# and masked, masking draws nothing at random.
SHORT_TEXTS = ["the cat sat on", "a dog is on"]


def _tokenizer():
    return UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"))


class UniLMv2BackboneTest(TestCase):
    def setUp(self):
        self.init_kwargs = tiny_backbone_kwargs()
        self.input_data = random_inputs(batch=2, length=9)

    def test_backbone_basics(self):
        self.run_backbone_test(
            cls=UniLMv2Backbone,
            init_kwargs=self.init_kwargs,
            input_data=self.input_data,
            expected_output_shape={
                "sequence_output": (2, 9, 32),
                "pooled_output": (2, 32),
            },
        )

    def test_saved_model(self):
        self.run_model_saving_test(
            cls=UniLMv2Backbone,
            init_kwargs=self.init_kwargs,
            input_data=self.input_data,
        )


class UniLMv2TokenizerTest(TestCase):
    def test_tokenizer_basics(self):
        output = self.run_preprocessing_layer_test(
            cls=UniLMv2Tokenizer,
            init_kwargs={"vocabulary": fixture_path("vocab.txt")},
            input_data=TEXTS,
            return_output=True,
        )
        # The fixture vocabulary: the 15, cat 18, sat 41, on 65, big 75.
        self.assertAllEqual(output[0][:5], [15, 18, 41, 65, 15])


class UniLMv2TextClassifierPreprocessorTest(TestCase):
    def setUp(self):
        self.init_kwargs = {"tokenizer": _tokenizer(), "sequence_length": 12}
        self.input_data = (TEXTS, [1, 0])

    def test_preprocessor_basics(self):
        x = self.run_preprocessor_test(
            cls=UniLMv2TextClassifierPreprocessor,
            init_kwargs=self.init_kwargs,
            input_data=self.input_data,
        )[0]
        # [CLS] the cat sat on the big red sun [SEP] [PAD] [PAD]
        self.assertAllEqual(x["token_ids"][0][:2], [6, 15])
        self.assertAllEqual(x["token_ids"][0][9:], [7, 0, 0])
        self.assertAllEqual(x["padding_mask"][0], [1] * 10 + [0] * 2)


class UniLMv2MaskedLMPreprocessorTest(TestCase):
    def setUp(self):
        # Everything selected is masked: the output is deterministic, so the
        # eager, `tf.data` and Grain paths can be compared.
        self.init_kwargs = {
            "tokenizer": _tokenizer(),
            "sequence_length": 12,
            "mask_selection_rate": 1.0,
            "mask_token_rate": 1.0,
            "random_token_rate": 0.0,
            "mask_selection_length": 4,
        }
        self.input_data = SHORT_TEXTS

    def test_preprocessor_basics(self):
        x, y, sample_weight = self.run_preprocessor_test(
            cls=UniLMv2MaskedLMPreprocessor,
            init_kwargs=self.init_kwargs,
            input_data=self.input_data,
        )
        mask_id = _tokenizer().token_to_id("[MASK]")
        positions = np.asarray(x["mask_positions"][0])
        self.assertAllEqual(np.asarray(x["token_ids"][0])[positions], [mask_id] * 4)
        self.assertAllEqual(positions, [1, 2, 3, 4])
        self.assertAllEqual(y, [[15, 18, 41, 65], [16, 19, 52, 65]])
        self.assertAllEqual(sample_weight, [[1.0] * 4] * 2)


class UniLMv2TextClassifierTest(TestCase):
    def setUp(self):
        self.init_kwargs = {
            "backbone": tiny_backbone(),
            "preprocessor": UniLMv2TextClassifierPreprocessor(
                _tokenizer(), sequence_length=12
            ),
            "num_classes": 2,
        }
        self.train_data = (TEXTS, np.array([1, 0]))

    def test_classifier_basics(self):
        self.run_task_test(
            cls=UniLMv2TextClassifier,
            init_kwargs=self.init_kwargs,
            train_data=self.train_data,
            expected_output_shape=(2, 2),
        )


class UniLMv2MaskedLMTest(TestCase):
    """keras-hub's `run_task_test` does not fit this task: it checks that
    `predict()` on raw text equals `predict()` on the training preprocessor's
    output, while `UniLMv2MaskedLM.predict()` on raw text documentedly reads
    the `[MASK]`s written in the text (and training masking never selects a
    written `[MASK]`). The checks that fit run here; `fit` on raw text and on
    `tf.data` is in `test_unilmv2_masked_lm.py`."""

    def setUp(self):
        tokenizer = _tokenizer()
        self.backbone_kwargs = tiny_backbone_kwargs(
            vocabulary_size=tokenizer.vocabulary_size()
        )
        self.preprocessor = UniLMv2MaskedLMPreprocessor(
            tokenizer,
            sequence_length=12,
            mask_selection_rate=1.0,
            mask_token_rate=1.0,
            random_token_rate=0.0,
            mask_selection_length=4,
        )

    def test_serialization(self):
        self.run_serialization_test(
            UniLMv2MaskedLM(
                UniLMv2Backbone(**self.backbone_kwargs), preprocessor=self.preprocessor
            )
        )

    def test_saved_model(self):
        x = self.preprocessor(SHORT_TEXTS)[0]
        self.run_model_saving_test(
            cls=UniLMv2MaskedLM,
            init_kwargs={"backbone": UniLMv2Backbone(**self.backbone_kwargs)},
            input_data={k: np.asarray(v) for k, v in x.items()},
        )
