"""Presets shipped with keras-unilmv2 (installed as `keras_unilmv2.presets`)."""
