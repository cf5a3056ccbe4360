"""Readers for the fine-tuning data of the UniLMv2 paper: SQuAD v1.1/v2.0,
GLUE and s2s-ft's sequence-to-sequence files, into the inputs the tasks'
`fit`/`evaluate`/`generate` take."""

from keras_unilmv2.datasets.glue import GLUE_TASKS
from keras_unilmv2.datasets.glue import GlueTask
from keras_unilmv2.datasets.glue import get_glue_task
from keras_unilmv2.datasets.glue import load_glue
from keras_unilmv2.datasets.glue import read_glue
from keras_unilmv2.datasets.seq2seq import load_seq2seq
from keras_unilmv2.datasets.seq2seq import read_seq2seq
from keras_unilmv2.datasets.squad import read_squad
from keras_unilmv2.datasets.squad import squad_fit_inputs
