"""Adversarial training of report §1–§3: the keras.Model subclass, its losses, callbacks and runs."""

from keras_sar2opt.training.adversarial import METRICS, WGAN_METRICS, AdversarialModel

__all__ = ["METRICS", "WGAN_METRICS", "AdversarialModel"]
