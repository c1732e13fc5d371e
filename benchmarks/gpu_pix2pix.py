"""Pix2Pix train step on one GPU: the package's AdversarialModel on Keras/JAX against PyTorch (report §3).

Usage, on a machine with a CUDA GPU, JAX and PyTorch (TensorFlow is not needed):

    python benchmarks/gpu_pix2pix.py all --batch 32 --out reports/gpu.json

Each framework runs in its own subprocess so neither holds GPU memory the other needs. Keras
trains through `AdversarialModel.fit` (its JAX stateless `train_step`, jitted by Keras) on host
arrays, in float32 and `mixed_bfloat16`; PyTorch runs the same networks
(`keras_sar2opt.convert.torch_reference`) and the same D-then-G step in eager mode, in float32
and bfloat16 autocast. Throughputs are medians of timed blocks after warm-up.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# keras_sar2opt imports Keras, whose default TensorFlow backend is absent on a JAX/PyTorch GPU machine;
# JAX must not preallocate GPU memory PyTorch will need when both are imported.
os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

SIZE = 256
KERAS_PRECISIONS = ("float32", "mixed_bfloat16")
TORCH_PRECISIONS = ("float32", "bf16 autocast")


def keras_rates(batch, steps, repeats, device_data=False, steps_per_execution=1):
    """img/s of AdversarialModel.fit on the Pix2Pix networks, per Keras precision.

    device_data: the arrays are put on the GPU first (fit slices them there) instead of being
    copied from host memory at every step.
    """
    import jax
    import keras
    import numpy as np

    from keras_sar2opt.experiments import PIX2PIX
    from keras_sar2opt.models import pix2pix_discriminator, pix2pix_generator
    from keras_sar2opt.training.adversarial import AdversarialModel

    rng = np.random.default_rng(0)
    sar = rng.uniform(-1, 1, (batch * steps, SIZE, SIZE, 3)).astype("float32")
    optical = rng.uniform(-1, 1, (batch * steps, SIZE, SIZE, 3)).astype("float32")
    if device_data:
        sar, optical = jax.device_put(sar), jax.device_put(optical)
    rates = {}
    for precision in KERAS_PRECISIONS:
        keras.mixed_precision.set_global_policy(precision)
        keras.utils.set_random_seed(0)
        model = AdversarialModel(pix2pix_generator(), pix2pix_discriminator(), conditional=True)
        model.compile(**PIX2PIX.compile_kwargs(), steps_per_execution=steps_per_execution)
        model.fit(sar, optical, batch_size=batch, epochs=1, verbose=0)  # compile and warm up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.fit(sar, optical, batch_size=batch, epochs=1, verbose=0)
            times.append(time.perf_counter() - start)
        rates[precision] = batch * steps / statistics.median(times)
        print(f"keras/jax {precision}: {rates[precision]:.1f} img/s", flush=True)
        del model
        keras.backend.clear_session()
    return {"framework": f"Keras {keras.__version__} / JAX {jax.__version__}", "device": str(jax.devices()[0]),
            "device_data": device_data, "steps_per_execution": steps_per_execution, "rates": rates}


def torch_rates(batch, steps, repeats, **_):
    """img/s of the same D-then-G step in PyTorch eager mode, per precision."""
    import torch
    from torch import nn

    from keras_sar2opt.convert import torch_reference
    from keras_sar2opt.experiments import PIX2PIX

    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # CPU: a smoke test only
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    bce = nn.BCEWithLogitsLoss()
    rates = {}
    for precision in TORCH_PRECISIONS:
        torch.manual_seed(0)
        generator = torch_reference.pix2pix_generator().to(device).train()
        discriminator = torch_reference.pix2pix_discriminator().to(device).train()
        g_opt, d_opt = (
            torch.optim.Adam(net.parameters(), cfg.learning_rate, betas=(cfg.beta_1, cfg.beta_2))
            for net, cfg in ((generator, PIX2PIX.g_optimizer), (discriminator, PIX2PIX.d_optimizer))
        )
        sar = torch.rand(batch, 3, SIZE, SIZE, device=device) * 2 - 1
        optical = torch.rand(batch, 3, SIZE, SIZE, device=device) * 2 - 1
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision != "float32")

        def step():
            with autocast:
                generated = generator(sar)
                real = discriminator(torch.cat([sar, optical], 1)).float()
                fake = discriminator(torch.cat([sar, generated.detach()], 1)).float()
                d_loss = 0.5 * (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake)))
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            discriminator.requires_grad_(False)
            with autocast:
                fake = discriminator(torch.cat([sar, generated], 1)).float()
                g_loss = bce(fake, torch.ones_like(fake)) + PIX2PIX.l1_weight * (generated.float() - optical).abs().mean()
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            discriminator.requires_grad_(True)

        for _ in range(5):
            step()
        times = []
        for _ in range(repeats):
            synchronize()
            start = time.perf_counter()
            for _ in range(steps):
                step()
            synchronize()
            times.append(time.perf_counter() - start)
        rates[precision] = batch * steps / statistics.median(times)
        print(f"torch {precision}: {rates[precision]:.1f} img/s", flush=True)
    return {"framework": f"PyTorch {torch.__version__} eager", "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "rates": rates}


RUNNERS = {"keras": keras_rates, "torch": torch_rates}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=(*RUNNERS, "all"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="train steps per timed block")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device-data", action="store_true", help="Keras: arrays on the GPU before fit")
    parser.add_argument("--steps-per-execution", type=int, default=1, help="Keras: train steps per jitted call")
    parser.add_argument("--out", type=Path, help="JSON file for the results ('all' only)")
    args = parser.parse_args(argv)
    if args.framework != "all":
        print(json.dumps(RUNNERS[args.framework](args.batch, args.steps, args.repeats, device_data=args.device_data,
                                                 steps_per_execution=args.steps_per_execution)))
        return 0
    results = {}
    for framework in RUNNERS:
        command = [sys.executable, __file__, framework, "--batch", str(args.batch), "--steps", str(args.steps),
                   "--repeats", str(args.repeats), "--steps-per-execution", str(args.steps_per_execution)]
        if args.device_data:
            command.append("--device-data")
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[framework] = json.loads(output.strip().splitlines()[-1])
    best_torch = max(results["torch"]["rates"].values())
    results["ratio_mixed_bfloat16_vs_best_torch"] = results["keras"]["rates"]["mixed_bfloat16"] / best_torch
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
