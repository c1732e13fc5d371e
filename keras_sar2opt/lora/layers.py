"""Report §4.2, Table 7: the LoRAConv layer, a frozen Conv2D/Conv2DTranspose plus a low-rank update."""

import keras
import numpy as np

CONV_TYPES = (keras.layers.Conv2D, keras.layers.Conv2DTranspose)


@keras.saving.register_keras_serializable(package="keras_sar2opt")
class LoRAConv(keras.layers.Wrapper):
    """A frozen Conv2D/Conv2DTranspose plus a low-rank update: `base(x) + alpha/rank · B(A(dropout(x)))`.

    A is a convolution of the base's own class and geometry (kernel size, strides, padding,
    dilation, output padding) into `rank` channels without bias; B is a bias-free 1x1 Conv2D from
    `rank` to the base's filters, initialised to zero so the wrapped layer starts out exactly equal
    to its base. Dropout (Table 7: 0.1) acts on the adapter's input in training only. A base
    activation is applied after the sum (pass it as `activation`; the wrapped layer must be linear).

    Both products are linear in the same input taps, so the update folds exactly into the base
    kernel (`merged_weights`): Conv2D kernels (kh, kw, in, out) gain `einsum("hwir,ro->hwio", A, B)`,
    Conv2DTranspose kernels (kh, kw, out, in) gain `einsum("hwri,ro->hwoi", A, B)`.

    This wraps the layer rather than using Keras's `Conv2D.enable_lora`: the built-in version adds
    `A @ B` to the kernel before the convolution, which leaves no place for dropout on the adapter's
    input, does not exist for Conv2DTranspose, and saves the merged kernel (resetting the adapters
    on load), so adapters cannot be stored on their own. The base layer stays frozen whatever
    `trainable` is set to on the wrapper.
    """

    def __init__(self, layer, rank=16, alpha=32, dropout=0.0, activation=None, **kwargs):
        if not isinstance(layer, CONV_TYPES):
            raise ValueError(f"Expected a Conv2D or Conv2DTranspose to wrap, received {type(layer).__name__}")
        if keras.activations.serialize(layer.activation) != "linear":
            raise ValueError(
                f"Expected a linear convolution inside LoRAConv (pass activation= to the wrapper), "
                f"received activation {keras.activations.serialize(layer.activation)!r}"
            )
        super().__init__(layer, **kwargs)
        self.rank = rank
        self.alpha = alpha
        self.dropout_rate = dropout
        self.scale = alpha / rank
        self.activation = keras.activations.get(activation)
        config = layer.get_config()
        self.lora_dropout = keras.layers.Dropout(dropout, name="lora_dropout")
        self.lora_a = type(layer).from_config(
            {
                **config,
                "name": "lora_a",
                "trainable": True,
                "filters": rank,
                "use_bias": False,
                "activation": None,
                # PEFT's kaiming_uniform(a=sqrt(5)): uniform(±1/sqrt(fan_in)).
                "kernel_initializer": keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform"),
                "kernel_regularizer": None,
                "kernel_constraint": None,
                "activity_regularizer": None,
            }
        )
        self.lora_b = keras.layers.Conv2D(
            layer.filters,
            1,
            use_bias=False,
            kernel_initializer="zeros",
            data_format=config["data_format"],
            dtype=config["dtype"],
            name="lora_b",
        )
        self.layer.trainable = False

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        keras.layers.Layer.trainable.fset(self, value)
        if "layer" in self.__dict__:
            self.layer.trainable = False

    def build(self, input_shape):
        if not self.layer.built:  # a deserialised base arrives built
            self.layer.build(input_shape)
        self.lora_a.build(input_shape)
        self.lora_b.build(self.lora_a.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        update = self.lora_b(self.lora_a(self.lora_dropout(inputs, training=training)))
        return self.activation(self.layer(inputs) + self.scale * update)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "rank": self.rank,
            "alpha": self.alpha,
            "dropout": self.dropout_rate,
            "activation": keras.activations.serialize(self.activation),
        }

    def base_config(self):
        """The configuration of the equivalent plain layer: the base's, with this name and activation."""
        return {
            **self.layer.get_config(),
            "name": self.name,
            "trainable": True,
            "activation": keras.activations.serialize(self.activation),
        }

    def merged_weights(self):
        """The plain layer's weights [kernel(, bias)] with the adapter folded into the kernel."""
        kernel, *bias = [keras.ops.convert_to_numpy(w) for w in self.layer.weights]
        a = keras.ops.convert_to_numpy(self.lora_a.kernel).astype(np.float64)
        b = keras.ops.convert_to_numpy(self.lora_b.kernel)[0, 0].astype(np.float64)
        transposed = isinstance(self.layer, keras.layers.Conv2DTranspose)
        equation = "hwri,ro->hwoi" if transposed else "hwir,ro->hwio"
        delta = self.scale * np.einsum(equation, a, b)
        return [(kernel.astype(np.float64) + delta).astype(kernel.dtype), *bias]
