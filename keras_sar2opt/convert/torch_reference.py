"""The SAR2Optical Pix2Pix networks in PyTorch (report §3) with the checkpoints' exact state_dict keys.

The reference for the converter's parity tests and the PyTorch side of the benchmark. PyTorch is
imported only when a network is built, so the package imports without it.
"""

import functools
import types

DECODERS = ("transpose", "upsample")


@functools.cache
def _modules():
    import torch
    from torch import nn

    class DownsamplingBlock(nn.Module):
        """Conv 4x4 (padding 1) -> BatchNorm (unless first) -> LeakyReLU(0.2); keys conv_block.{0,1}."""

        def __init__(self, c_in, c_out, stride=2, use_norm=True):
            super().__init__()
            layers = [nn.Conv2d(c_in, c_out, 4, stride=stride, padding=1, bias=not use_norm)]
            if use_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
            self.conv_block = nn.Sequential(*layers)

        def forward(self, x):
            return self.conv_block(x)

    class UpsamplingBlock(nn.Module):
        """ConvTranspose 4x4 s2 (or Upsample x2 + Conv 3x3) -> BatchNorm -> [Dropout 0.5] -> ReLU."""

        def __init__(self, c_in, c_out, dropout, decoder, upsample_mode):
            super().__init__()
            if decoder == "upsample":
                up = nn.Sequential(
                    nn.Upsample(scale_factor=2, mode=upsample_mode),
                    nn.Conv2d(c_in, c_out, 3, stride=1, padding=1, bias=False),
                )
            else:
                up = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False)
            layers = [up, nn.BatchNorm2d(c_out)] + ([nn.Dropout(0.5)] if dropout else []) + [nn.ReLU()]
            self.conv_block = nn.Sequential(*layers)

        def forward(self, x):
            return self.conv_block(x)

    class UNetEncoder(nn.Module):
        def __init__(self, in_channels):
            super().__init__()
            channels = [in_channels, 64, 128, 256, 512, 512, 512, 512, 512]
            for k in range(1, 9):
                self.add_module(f"enc{k}", DownsamplingBlock(channels[k - 1], channels[k], use_norm=k > 1))

        def forward(self, x):
            features = []
            for k in range(1, 9):
                x = getattr(self, f"enc{k}")(x)
                features.append(x)
            return features

    class UNetDecoder(nn.Module):
        def __init__(self, decoder, upsample_mode):
            super().__init__()
            c_in = [512, 1024, 1024, 1024, 1024, 512, 256, 128]
            c_out = [512, 512, 512, 512, 256, 128, 64, 64]
            for k in range(1, 9):
                block = UpsamplingBlock(c_in[k - 1], c_out[k - 1], k <= 3, decoder, upsample_mode)
                self.add_module(f"dec{k}", block)

        def forward(self, features):
            x = features[7]
            for k in range(1, 8):
                # Skip connection, encoder first: cat([enc_{8-k}, dec_k]).
                x = torch.cat([features[7 - k], getattr(self, f"dec{k}")(x)], dim=1)
            return self.dec8(x)

    class UNetGenerator(nn.Module):
        def __init__(self, in_channels, out_channels, decoder, upsample_mode):
            super().__init__()
            self.encoder = UNetEncoder(in_channels)
            self.decoder = UNetDecoder(decoder, upsample_mode)
            self.head = nn.Sequential(nn.Conv2d(64, out_channels, 3, stride=1, padding=1), nn.Tanh())

        def forward(self, x):
            return self.head(self.decoder(self.encoder(x)))

    class PatchDiscriminator(nn.Module):
        def __init__(self, in_channels):
            super().__init__()
            self.model = nn.Sequential(
                DownsamplingBlock(in_channels, 64, use_norm=False),
                DownsamplingBlock(64, 128),
                DownsamplingBlock(128, 256),
                DownsamplingBlock(256, 512, stride=1),
                nn.Conv2d(512, 1, 4, stride=1, padding=1),
            )

        def forward(self, x):
            return self.model(x)

    class PatchGAN(nn.Module):
        """70x70 PatchGAN on cat([sar, optical], dim=1); outputs logits."""

        def __init__(self, in_channels):
            super().__init__()
            self.model = PatchDiscriminator(in_channels)

        def forward(self, x):
            return self.model(x)

    return types.SimpleNamespace(UNetGenerator=UNetGenerator, PatchGAN=PatchGAN)


def pix2pix_generator(in_channels=3, out_channels=3, decoder="transpose", upsample_mode="nearest"):
    """The SAR2Optical U-Net generator (`torch.nn.Module`, NCHW, tanh output); 94 state_dict entries."""
    if decoder not in DECODERS:
        raise ValueError(f"Expected decoder in {DECODERS}, received {decoder!r}")
    return _modules().UNetGenerator(in_channels, out_channels, decoder, upsample_mode)


def pix2pix_discriminator(in_channels=6):
    """The SAR2Optical 70x70 PatchGAN (`torch.nn.Module`) on cat([sar, optical]); 22 state_dict entries."""
    return _modules().PatchGAN(in_channels)
