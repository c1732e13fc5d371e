"""The report's architecture Tables 1, 3, 5 and the Pix2Pix totals of §3.1, as data.

Each row keeps the report's layer text, output shape (without batch) and parameter count, plus
the names of our layers it covers: the report groups e.g. "Conv2D + BN + LeakyReLU" into one row,
whose parameters are the sum over its layers and whose shape is that of its last layer.
Parameter counts follow `model.summary()`: BatchNormalization counts 4 x channels.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Row:
    """A report row: layer text, output shape, parameters (None: not given), our layer names."""

    layer: str
    shape: tuple
    params: int | None
    layers: tuple


@dataclasses.dataclass(frozen=True)
class ReportTable:
    """A network's reference: report source, rows, total and trainable (None: not given)."""

    model: str
    source: str
    rows: tuple
    total: int | None
    trainable: int | None = None


def _table1_rows(output_row):
    return (
        Row("Conv2D", (32, 32, 64), 1_792, ("conv1",)),
        Row("LeakyReLU", (32, 32, 64), 0, ("lrelu1",)),
        Row("Conv2D", (16, 16, 128), 73_856, ("conv2",)),
        Row("LeakyReLU", (16, 16, 128), 0, ("lrelu2",)),
        Row("Conv2D", (8, 8, 128), 147_584, ("conv3",)),
        Row("LeakyReLU", (8, 8, 128), 0, ("lrelu3",)),
        Row("Conv2D", (4, 4, 256), 295_168, ("conv4",)),
        Row("LeakyReLU", (4, 4, 256), 0, ("lrelu4",)),
        Row("Flatten", (4096,), 0, ("flatten",)),
        Row("Dropout (0.4)", (4096,), 0, ("dropout",)),
        output_row,
    )


TABLE_1 = ReportTable(
    model="scratch_discriminator",
    source="Table 1",
    rows=_table1_rows(Row("Dense (Sigmoid)", (1,), 4_097, ("dense",))),
    total=522_497,
)

# §1.3 gives no table: the critic is Table 1's topology with a linear output.
WGAN_CRITIC = ReportTable(
    model="wgan_critic",
    source="Table 1 topology (§1.3)",
    rows=_table1_rows(Row("Dense (linear)", (1,), 4_097, ("dense",))),
    total=522_497,
)

TABLE_3 = ReportTable(
    model="patchgan_discriminator",
    source="Table 3",
    rows=(
        Row("Input (SAR)", (128, 128, 3), 0, ("sar",)),
        Row("Input (Optical)", (128, 128, 3), 0, ("optical",)),
        Row("Concatenate", (128, 128, 6), 0, ("concat",)),
        Row("Conv2D", (64, 64, 32), 3_104, ("conv1",)),
        Row("LeakyReLU", (64, 64, 32), 0, ("lrelu1",)),
        Row("Conv2D", (32, 32, 64), 32_832, ("conv2",)),
        Row("BatchNorm", (32, 32, 64), 256, ("bn2",)),
        Row("LeakyReLU", (32, 32, 64), 0, ("lrelu2",)),
        Row("Conv2D", (16, 16, 128), 131_200, ("conv3",)),
        Row("BatchNorm", (16, 16, 128), 512, ("bn3",)),
        Row("LeakyReLU", (16, 16, 128), 0, ("lrelu3",)),
        Row("Dropout", (16, 16, 128), 0, ("dropout",)),
        Row("Conv2D", (16, 16, 256), 524_544, ("conv4",)),
        Row("BatchNorm", (16, 16, 256), 1_024, ("bn4",)),
        Row("LeakyReLU", (16, 16, 256), 0, ("lrelu4",)),
        Row("Conv2D", (16, 16, 1), 4_097, ("conv5",)),
    ),
    total=697_569,
)

TABLE_5 = ReportTable(
    model="unet_generator",
    source="Table 5",
    rows=(
        Row("Conv2D + LeakyReLU", (64, 64, 64), 3_136, ("enc1", "enc1_lrelu")),
        Row("Conv2D + BN + LeakyReLU", (32, 32, 128), 131_712, ("enc2", "enc2_bn", "enc2_lrelu")),
        Row("Conv2D + BN + LeakyReLU", (16, 16, 256), 525_568, ("enc3", "enc3_bn", "enc3_lrelu")),
        Row("Conv2D + BN + LeakyReLU", (8, 8, 512), 2_099_712, ("enc4", "enc4_bn", "enc4_lrelu")),
        Row("Conv2DTranspose + BN + ReLU", (16, 16, 256), 2_098_432, ("dec1", "dec1_bn", "dec1_relu")),
        Row("Conv2DTranspose + BN + ReLU", (32, 32, 128), 1_049_216, ("dec2", "dec2_bn", "dec2_relu")),
        Row("Conv2DTranspose + BN + ReLU", (64, 64, 64), 262_464, ("dec3", "dec3_bn", "dec3_relu")),
        Row("Conv2DTranspose", (128, 128, 3), 6_147, ("out", "out_tanh")),
    ),
    total=6_176_387,
)

# §3.1 gives the structure; the counts are those of the SAR2Optical checkpoints (report §3.1).
PIX2PIX_GENERATOR = ReportTable(
    model="pix2pix_generator",
    source="§3.1 (SAR2Optical)",
    rows=(
        Row("Input (SAR)", (256, 256, 3), 0, ("sar",)),
        Row("Output via Tanh", (256, 256, 3), None, ("head_conv", "head_tanh")),
    ),
    total=54_552_835,
    trainable=54_541_827,
)

PIX2PIX_DISCRIMINATOR = ReportTable(
    model="pix2pix_discriminator",
    source="§3.1 (SAR2Optical)",
    rows=(
        Row("Input (SAR)", (256, 256, 3), 0, ("sar",)),
        Row("Input (Optical)", (256, 256, 3), 0, ("optical",)),
        Row("70x70 PatchGAN logits", (30, 30, 1), None, ("disc4_pad", "disc4_conv")),
    ),
    total=None,
    trainable=2_768_705,
)

TABLES = {
    table.model: table for table in (TABLE_1, TABLE_3, WGAN_CRITIC, TABLE_5, PIX2PIX_GENERATOR, PIX2PIX_DISCRIMINATOR)
}
