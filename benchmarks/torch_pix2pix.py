"""The PyTorch side of every benchmark: SAR2Optical's Pix2Pix (report §3) and its D-then-G train step.

The networks are `keras_sar2opt.convert.torch_reference`'s, with the Adam optimisers of the
`pix2pix` experiment; the step matches AdversarialModel's. Used by the CPU benchmark and by
`benchmarks/gpu_pix2pix.py`. PyTorch is imported inside the functions.
"""

import numpy as np


def build_networks(device="cpu", channels_last=False):
    """(generator, discriminator, (G's Adam, D's Adam)) on `device`, seeded; NHWC order if `channels_last`."""
    import torch

    from keras_sar2opt.convert import torch_reference
    from keras_sar2opt.experiments import PIX2PIX

    torch.manual_seed(0)
    generator = torch_reference.pix2pix_generator().to(device)
    discriminator = torch_reference.pix2pix_discriminator().to(device)
    if channels_last:
        generator, discriminator = (net.to(memory_format=torch.channels_last) for net in (generator, discriminator))
    optimizers = tuple(
        torch.optim.Adam(network.parameters(), config.learning_rate, betas=(config.beta_1, config.beta_2))
        for network, config in ((generator, PIX2PIX.g_optimizer), (discriminator, PIX2PIX.d_optimizer))
    )
    return generator, discriminator, optimizers


def images(batch, size, seed=0, device="cpu", channels_last=False):
    """A constant NCHW batch of 3-channel images, uniform in [-1, 1), on `device`."""
    import torch

    array = np.random.default_rng(seed).uniform(-1.0, 1.0, (batch, 3, size, size)).astype(np.float32)
    tensor = torch.from_numpy(array).to(device)
    return tensor.to(memory_format=torch.channels_last) if channels_last else tensor


def train_step(networks, sar, optical, bf16, l1_weight=None):
    """A call running one D-then-G step like AdversarialModel's on the batches `sar` and `optical`.

    Losses: BCEWithLogits (D: mean of real and fake) + λ·L1 for G, λ `l1_weight` (None: the `pix2pix`
    experiment's); D takes cat([sar, optical]) on channels, as both conditional discriminators do;
    `bf16`: bfloat16 autocast on the batches' device. The call returns G's loss as a tensor.
    """
    import torch
    from torch import nn

    from keras_sar2opt.experiments import PIX2PIX

    generator, discriminator, (g_optimizer, d_optimizer) = networks
    bce = nn.BCEWithLogitsLoss()
    l1_weight = PIX2PIX.l1_weight if l1_weight is None else l1_weight

    def autocast():
        return torch.autocast(sar.device.type, dtype=torch.bfloat16, enabled=bf16)

    def step():
        generator.train()
        discriminator.train()
        with autocast():
            generated = generator(sar)
            real_logits = discriminator(torch.cat([sar, optical], 1))
            fake_logits = discriminator(torch.cat([sar, generated.detach()], 1))
            d_loss = 0.5 * (
                bce(real_logits.float(), torch.ones_like(real_logits, dtype=torch.float32))
                + bce(fake_logits.float(), torch.zeros_like(fake_logits, dtype=torch.float32))
            )
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()
        discriminator.requires_grad_(False)  # the G step differentiates G's weights only
        with autocast():
            fake_logits = discriminator(torch.cat([sar, generated], 1))
            g_loss = bce(fake_logits.float(), torch.ones_like(fake_logits, dtype=torch.float32))
            g_loss = g_loss + l1_weight * torch.mean(torch.abs(generated.float() - optical))
        g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        g_optimizer.step()
        discriminator.requires_grad_(True)
        return g_loss

    return step


def inference_call(generator, batch, size, bf16):
    """A call translating a constant CPU batch in eval mode (bfloat16 autocast if `bf16`) to a numpy batch."""
    import torch

    inputs = images(batch, size)

    def call():
        generator.eval()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return generator(inputs).float().numpy()

    return call
