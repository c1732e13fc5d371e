"""keras_sar2opt: GAN-based SAR-to-optical image translation in Keras 3."""

__version__ = "0.1.0"
