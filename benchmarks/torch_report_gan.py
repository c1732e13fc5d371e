"""The report's GAN in PyTorch for the CPU benchmark: Table 5's U-Net and Table 3's PatchGAN (§1.2, §2).

The same layers, shapes, parameter counts and Keras defaults (BatchNorm momentum 0.99, epsilon 1e-3;
"same" padding, asymmetric for Table 3's stride-1 4x4 convolutions), trained by the D-then-G step of
`benchmarks.torch_pix2pix.train_step` with the `patchgan` experiment's optimisers and L1 weight.
PyTorch is imported inside the functions.
"""

# Keras BatchNormalization's defaults: momentum 0.99 is PyTorch's 0.01.
BN = {"eps": 1e-3, "momentum": 0.01}


def _unet(channels=3):
    """Table 5: enc1..enc4 (4x4 s2 + BN from enc2 + LeakyReLU), dec1..dec3 (transposed 4x4 s2 + BN + ReLU,
    concatenated [enc, dec]), a transposed `out` and tanh: 6,173,699 trainable parameters."""
    import torch

    from keras_sar2opt.models import unet

    encoder = unet.ENCODER_FILTERS
    decoder = unet.DECODER_FILTERS

    class UNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            nn = torch.nn
            self.enc = nn.ModuleList()
            for k, filters in enumerate(encoder):
                block = [nn.Conv2d(encoder[k - 1] if k else channels, filters, 4, 2, 1)]
                block += [nn.BatchNorm2d(filters, **BN)] if k else []
                self.enc.append(nn.Sequential(*block, nn.LeakyReLU(0.2)))
            self.dec = nn.ModuleList()
            inputs = encoder[-1]
            for k, filters in enumerate(decoder):
                layers = (nn.ConvTranspose2d(inputs, filters, 4, 2, 1), nn.BatchNorm2d(filters, **BN), nn.ReLU())
                self.dec.append(nn.Sequential(*layers))
                inputs = filters + encoder[-k - 2]
            self.out = nn.ConvTranspose2d(inputs, channels, 4, 2, 1)

        def forward(self, x):
            skips = []
            for block in self.enc:
                x = block(x)
                skips.append(x)
            for k, block in enumerate(self.dec):
                x = torch.cat([skips[-k - 2], block(x)], 1)
            return torch.tanh(self.out(x))

    return UNet()


def _patchgan(channels=6):
    """Table 3: 4x4 convolutions with Keras "same" padding (1, 2) where the stride is 1, BN from the second,
    LeakyReLU, Dropout after the third, and a one-channel logit conv: 696,673 trainable parameters."""
    import torch

    from keras_sar2opt.models import patchgan

    nn = torch.nn
    layers, inputs = [], channels
    for k, (filters, strides, norm) in enumerate(patchgan.BLOCKS, start=1):
        layers += [nn.ZeroPad2d((1, 2, 1, 2))] if strides == 1 else []
        layers.append(nn.Conv2d(inputs, filters, 4, strides, 1 if strides == 2 else 0))
        layers += [nn.BatchNorm2d(filters, **BN)] if norm else []
        layers.append(nn.LeakyReLU(0.2))
        layers += [nn.Dropout(patchgan.DROPOUT_RATE)] if k == patchgan.DROPOUT_AFTER else []
        inputs = filters
    layers += [nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(inputs, 1, 4, 1, 0)]
    return nn.Sequential(*layers)


def build_networks():
    """(generator, discriminator, (G's Adam, D's Adam)) of the `patchgan` experiment, seeded."""
    import torch

    from keras_sar2opt.experiments import PATCHGAN

    torch.manual_seed(0)
    generator, discriminator = _unet(), _patchgan()
    optimizers = tuple(
        torch.optim.Adam(network.parameters(), config.learning_rate, betas=(config.beta_1, config.beta_2))
        for network, config in ((generator, PATCHGAN.g_optimizer), (discriminator, PATCHGAN.d_optimizer))
    )
    return generator, discriminator, optimizers
