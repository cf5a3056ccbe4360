"""Samplers for UniLMv2 generation."""

from keras_unilmv2.samplers.unilmv2_beam_sampler import UniLMv2BeamSampler

__all__ = ["UniLMv2BeamSampler"]
