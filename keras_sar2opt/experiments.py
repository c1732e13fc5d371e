"""The report's experiments (§1–§4) as named configurations: the one source of their defaults."""

import dataclasses

from keras_sar2opt import paper
from keras_sar2opt.errors import Sar2OptError

OPTIMIZERS = ("adam", "rmsprop")
DEFAULT_PRETRAIN_EPOCHS = 20  # fine-tuning without a generator: epochs of the synthetic pre-training (§4)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """An optimiser by name with its learning rate (and Adam's betas)."""

    name: str
    learning_rate: float
    beta_1: float = 0.9
    beta_2: float = 0.999

    def build(self):
        import keras

        if self.name == "adam":
            return keras.optimizers.Adam(self.learning_rate, beta_1=self.beta_1, beta_2=self.beta_2)
        if self.name == "rmsprop":
            return keras.optimizers.RMSprop(self.learning_rate)
        raise Sar2OptError(f"Expected an optimizer out of {', '.join(OPTIMIZERS)}, received {self.name!r}")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Every setting of one experiment. `assumed` names the fields the report does not state."""

    name: str
    section: str  # the report section the experiment reproduces
    generator: str  # a key of keras_sar2opt.models.MODELS
    discriminator: str  # a key of keras_sar2opt.models.MODELS
    conditional: bool  # D sees (sar, optical) rather than optical alone
    adversarial_loss: str  # "bce" or "wasserstein"
    d_from_logits: bool  # D outputs logits (True) or sigmoid probabilities (False)
    g_optimizer: OptimizerConfig
    d_optimizer: OptimizerConfig
    image_size: int
    batch_size: int
    epochs: int
    l1_weight: float = 100.0
    n_critic: int = 1  # critic updates per generator update ("wasserstein" only)
    clip_value: float | None = None  # critic weight clipping ("wasserstein" only)
    augment: bool = True  # flips and 90° rotations applied to both images of a pair
    seed: int = 0
    pretrained: bool = False  # starts from a trained generator (§4) instead of a fresh one
    # LoRA (§4.2): with lora_targets (convolution names or block prefixes, keras_sar2opt.lora.apply_lora)
    # only adapters of this rank, alpha and dropout on them and the also_train layers train.
    lora_targets: tuple = ()
    lora_rank: int = 0
    lora_alpha: float = 0.0
    lora_dropout: float = 0.0
    also_train: tuple = ()
    assumed: tuple = ()

    def to_dict(self):
        return dataclasses.asdict(self)

    def with_overrides(self, *, g_learning_rate=None, d_learning_rate=None, **settings):
        """This configuration with the given fields (and optimiser learning rates) replaced.

        None keeps the experiment's default, so command-line options can be passed through as they are.
        """
        settings = {key: value for key, value in settings.items() if value is not None}
        unknown = sorted(set(settings) - {field.name for field in dataclasses.fields(self)})
        if unknown:
            raise Sar2OptError(f"Expected settings of ExperimentConfig, received {', '.join(unknown)}")
        for key, rate in (("g_optimizer", g_learning_rate), ("d_optimizer", d_learning_rate)):
            if rate is not None:
                settings[key] = dataclasses.replace(getattr(self, key), learning_rate=rate)
        return dataclasses.replace(self, **settings)

    def compile_kwargs(self):
        """The AdversarialModel.compile arguments of this experiment (fresh optimisers)."""
        kwargs = {
            "g_optimizer": self.g_optimizer.build(),
            "d_optimizer": self.d_optimizer.build(),
            "adversarial_loss": self.adversarial_loss,
            "l1_weight": self.l1_weight,
            "d_from_logits": self.d_from_logits,
        }
        if self.adversarial_loss == "wasserstein":
            kwargs.update(n_critic=self.n_critic, clip_value=self.clip_value)
        return kwargs


# §2: λ_L1 = 100 is not stated for the §1 GANs; their generator losses (≈33 with L1 ≈ 0.295)
# imply it. The batch size, G's optimiser and augmentation are not stated in §1.
_SECTION1_ASSUMED = ("l1_weight", "g_optimizer", "batch_size", "augment")

SCRATCH = ExperimentConfig(
    name="scratch",
    section="§1.1, §2",
    generator="unet_generator",  # Table 5
    discriminator="scratch_discriminator",  # Table 1
    conditional=False,  # §1.1.1: classifies optical images as real or generated
    adversarial_loss="bce",  # §1.1.2
    d_from_logits=False,  # Table 1 ends in a sigmoid
    g_optimizer=OptimizerConfig("adam", 2e-4, beta_1=0.5),  # assumed (pix2pix's setting)
    d_optimizer=OptimizerConfig(**paper.SECTION11_D_OPTIMIZER),  # §1.1.2 (β2 is Keras's default)
    image_size=128,  # Tables 1 and 5
    batch_size=16,  # assumed
    epochs=paper.SECTION11_EPOCHS,  # §1.1.2; the generator figures of §2 are at epochs 10 and 130
    assumed=_SECTION1_ASSUMED,
)

PATCHGAN = dataclasses.replace(
    SCRATCH,
    name="patchgan",
    section="§1.2, §2",
    discriminator="patchgan_discriminator",  # Table 3
    conditional=True,  # §1.2: D takes the concatenated SAR and optical pair
    d_from_logits=True,  # Table 3's last convolution is linear (one logit per patch)
    d_optimizer=OptimizerConfig(**paper.SECTION11_D_OPTIMIZER),  # assumed: as scratch
    epochs=20,  # assumed: as scratch
    assumed=_SECTION1_ASSUMED + ("d_optimizer", "epochs"),
)

WGAN = dataclasses.replace(
    SCRATCH,
    name="wgan",
    section="§1.3, §2",
    discriminator="wgan_critic",  # Table 1's topology, linear output (§1.3)
    conditional=False,  # assumed: the critic shares Table 1's optical-only input
    adversarial_loss="wasserstein",  # §1.3.1
    d_from_logits=True,  # a linear score
    g_optimizer=OptimizerConfig("rmsprop", paper.SECTION13_CRITIC["learning_rate"]),  # assumed: as the critic
    d_optimizer=OptimizerConfig("rmsprop", paper.SECTION13_CRITIC["learning_rate"]),  # §1.3.1
    n_critic=5,  # assumed (the WGAN paper's default)
    clip_value=paper.SECTION13_CRITIC["clip_value"],  # §1.3.1
    epochs=20,  # assumed: as scratch
    assumed=_SECTION1_ASSUMED + ("conditional", "n_critic", "epochs"),
)

PIX2PIX = ExperimentConfig(
    name="pix2pix",
    section="§3",
    generator="pix2pix_generator",  # §3.1
    discriminator="pix2pix_discriminator",  # §3.1: 70x70 PatchGAN
    conditional=True,
    adversarial_loss="bce",  # §3.2
    d_from_logits=True,
    g_optimizer=OptimizerConfig("adam", 2e-4, beta_1=0.5, beta_2=0.999),  # §3.1
    d_optimizer=OptimizerConfig("adam", 2e-4, beta_1=0.5, beta_2=0.999),  # §3.1
    image_size=256,  # §3.1
    batch_size=32,  # assumed: the batch of the same authors' §4 runs
    epochs=200,  # assumed: pix2pix's 100 + 100 (the published checkpoint is epoch 180)
    l1_weight=paper.SECTION32_L1_WEIGHT,  # §3.2
    assumed=("batch_size", "epochs", "augment"),
)


def _table_adam(table):
    """The Adam optimiser of Table 6 or 7: its learning rate with the report's betas."""
    beta_1, beta_2 = paper.ADAM_BETAS
    return OptimizerConfig("adam", table["learning_rate"], beta_1=beta_1, beta_2=beta_2)


FINETUNE_FULL = dataclasses.replace(
    PIX2PIX,
    name="finetune-full",
    section="§4.1",
    pretrained=True,  # Table 6: pre-trained checkpoint pix2pix_gen_180.pth; every parameter updated (§4.1)
    g_optimizer=_table_adam(paper.TABLE6_FULL_FINETUNING),  # Table 6
    d_optimizer=_table_adam(paper.TABLE6_FULL_FINETUNING),  # assumed: Table 6's one optimiser
    image_size=256,  # Table 6's checkpoint: §3.1, 256x256
    batch_size=paper.TABLE6_FULL_FINETUNING["batch_size"],
    epochs=paper.TABLE6_FULL_FINETUNING["epochs"],
    l1_weight=paper.TABLE6_FULL_FINETUNING["l1_weight"],
    augment=True,  # Table 6: horizontal/vertical flips, 90° rotations; split 80/10/10 (split_pairs)
    assumed=("d_optimizer",),
)

FINETUNE_LORA = dataclasses.replace(
    FINETUNE_FULL,
    name="finetune-lora",
    section="§4.2",
    discriminator="pix2pix_discriminator",  # §4.2.1: a PatchGAN trained from scratch
    g_optimizer=_table_adam(paper.TABLE7_LORA),  # Table 7
    d_optimizer=_table_adam(paper.TABLE7_LORA),  # assumed: Table 7's one optimiser
    batch_size=paper.TABLE7_LORA["batch_size"],
    epochs=paper.TABLE7_LORA["epochs"],
    l1_weight=100.0,  # assumed: Table 8's G losses (~38 with L1 ~0.35) imply it, as in Table 6
    augment=True,  # assumed: as Table 6
    lora_rank=paper.TABLE7_LORA["rank"],
    lora_alpha=paper.TABLE7_LORA["alpha"],
    lora_dropout=paper.TABLE7_LORA["dropout"],
    lora_targets=tuple(f"enc{k}" for k in range(1, 9)),  # Table 7, §4.2.1: the encoder convolutions enc1-enc8
    also_train=(),  # §4.2.1: decoder unchanged (its ~820,000 count fits dec8 + head too: docs/finetuning.md)
    assumed=("d_optimizer", "l1_weight", "augment"),
)

EXPERIMENTS = {config.name: config for config in (SCRATCH, PATCHGAN, WGAN, PIX2PIX, FINETUNE_FULL, FINETUNE_LORA)}


def get_experiment(name):
    """The configuration registered under name in EXPERIMENTS."""
    if name not in EXPERIMENTS:
        raise Sar2OptError(f"Expected an experiment out of {', '.join(EXPERIMENTS)}, received {name!r}")
    return EXPERIMENTS[name]
