"""Evaluation metrics of the UniLMv2 paper's tasks: SQuAD EM/F1, GLUE
metrics, ROUGE and BLEU."""

from keras_unilmv2.metrics.generation import bleu
from keras_unilmv2.metrics.generation import rouge
from keras_unilmv2.metrics.generation import split_sentences
from keras_unilmv2.metrics.glue import accuracy
from keras_unilmv2.metrics.glue import f1
from keras_unilmv2.metrics.glue import glue_metrics
from keras_unilmv2.metrics.glue import matthews_corrcoef
from keras_unilmv2.metrics.glue import pearson
from keras_unilmv2.metrics.glue import spearman
from keras_unilmv2.metrics.squad import exact_match
from keras_unilmv2.metrics.squad import f1_score
from keras_unilmv2.metrics.squad import normalize_answer
from keras_unilmv2.metrics.squad import squad_v1_metrics
from keras_unilmv2.metrics.squad import squad_v2_metrics
