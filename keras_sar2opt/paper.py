"""The report's own numbers and captions, each with the table, figure or section it comes from."""

# Table 2: accuracy (%) of the discriminator trained from scratch, epoch -> (real, fake).
TABLE2_ACCURACY = {1: (89.1, 44.5), 5: (69.8, 72.8), 10: (85.1, 85.9), 15: (90.2, 90.5), 20: (92.7, 92.9)}

# Table 4: experiment -> (discriminator, loss, stability, accuracy % or None for "–", visual impact).
# §1.2 gives PatchGAN's accuracy as "approximately 54%"; the scratch value "~92.8%" is the mean of
# Table 2's final real and fake accuracies.
TABLE4_COMPARISON = {
    "scratch": ("From scratch", "BCE", "High", 92.8, "Strong global realism"),
    "patchgan": ("PatchGAN", "BCE", "Moderate", 54.0, "Improved local consistency"),
    "wgan": ("WGAN critic", "Wasserstein", "Very high", None, "Coarse, blurred outputs"),
}

# Table 8: LoRA fine-tuning, epoch -> (train D, train G, train L1, val D, val G, val L1).
TABLE8_COLUMNS = ("d_loss", "g_loss", "g_l1", "val_d_loss", "val_g_loss", "val_g_l1")
TABLE8_LOSSES = {
    1: (0.2156, 38.0381, 0.3513, 0.6789, 34.3414, 0.3326),
    5: (0.1020, 38.5482, 0.3445, 0.8328, 35.8182, 0.3381),
    10: (0.0427, 40.4052, 0.3508, 0.6985, 36.4843, 0.3428),
    15: (0.0717, 40.0660, 0.3472, 0.8892, 35.6108, 0.3321),
    20: (0.0528, 40.2161, 0.3435, 1.1539, 37.3918, 0.3437),
    25: (0.0015, 42.6669, 0.3509, 1.2074, 37.2212, 0.3390),
    29: (0.1026, 41.9068, 0.3446, 0.8156, 32.8147, 0.3123),
    30: (0.0554, 39.3827, 0.3414, 1.3804, 38.7455, 0.3495),
}

# Training settings the report states (keras_sar2opt.experiments takes them from here).
SECTION11_D_OPTIMIZER = {"name": "adam", "learning_rate": 1e-3, "beta_1": 0.5}  # §1.1.2
SECTION11_EPOCHS = 20  # §1.1.2
SECTION13_CRITIC = {"name": "rmsprop", "learning_rate": 5e-5, "clip_value": 0.01}  # §1.3.1: RMSprop, |w| <= 0.01
SECTION32_L1_WEIGHT = 100.0  # §3.2: the λ of L_G = L_adv + λ L_L1
# Table 6, full fine-tuning; Table 7, LoRA. Both use Adam with β1 = 0.5, β2 = 0.999.
ADAM_BETAS = (0.5, 0.999)
TABLE6_FULL_FINETUNING = {
    "checkpoint": "pix2pix_gen_180.pth",
    "epochs": 50,
    "batch_size": 32,
    "learning_rate": 5e-5,
    "l1_weight": 100.0,
}
TABLE7_LORA = {"rank": 16, "alpha": 32.0, "dropout": 0.1, "learning_rate": 2e-4, "batch_size": 32, "epochs": 30}

# §2 "Training Progress" (Figures 1 and 2): generator losses at epoch 10 and 130, epoch -> (G loss, L1).
SECTION2_GENERATOR = {10: (33.0, 0.295), 130: (28.4, 0.250)}
FIGURE1_EPOCH = 10
FIGURE2_EPOCH = 130

# §4.1.2 (Figure 6): full fine-tuning over 50 epochs, metric -> (start, end, low, high) as stated;
# None where the text gives no value ("stabilized around 0.42-0.48" is a range, "from 32.5 to 27.5"
# a start and an end).
FIGURE6_STATED = {
    "d_loss": (None, None, 0.42, 0.48),
    "val_d_loss": (None, None, 0.60, 0.65),
    "g_loss": (32.5, 27.5, None, None),
    "val_g_loss": (None, None, 30.0, 35.0),
    "g_l1": (0.34, 0.26, None, None),
    "val_g_l1": (0.34, 0.30, None, None),
}
FIGURE6_EPOCHS = 50  # §4.1.2
FIGURE8_EPOCHS = 30  # §4.2.2

# Trainable generator parameters as the report states them: §4.1 "all 54.5 million parameters";
# §4.2.1 LoRA "roughly 820,000 trainable LoRA parameters", "approximately 1.5%".
SECTION41_TRAINABLE = 54_500_000
SECTION42_LORA_TRAINABLE = 820_000
SECTION42_LORA_PERCENT = 1.5

# Experiments whose runs each figure or table draws on (names of keras_sar2opt.experiments.EXPERIMENTS).
SECTION1_EXPERIMENTS = ("scratch", "patchgan", "wgan")
TABLE2_EXPERIMENT = "scratch"
FIGURE6_EXPERIMENT = "finetune-full"
LORA_EXPERIMENT = "finetune-lora"  # Table 8 and Figure 8

# Figures of translated samples: role -> (caption in the report, what the report finds there).
# The report shows these figures without numbers; its finding is its qualitative statement.
EVALUATION_FIGURES = {
    "fig3": (
        "Figure 3: Pre-trained model performance on Sentinel-1/2 dataset (training domain).",
        "high-quality reconstructions: accurate colours, sharp structure (§3.3)",
    ),
    "fig4": (
        "Figure 4: Pre-trained model inference on raw QXSLAB-SAROPT images.",
        "severe degradation: blocky artifacts, whitening, lost structure (§3.4)",
    ),
    "fig5": (
        "Figure 5: Pre-trained model inference on preprocessed QXSLAB-SAROPT images.",
        "marginal improvement over Figure 4, still far from ground truth (§3.5)",
    ),
    "fig7": (
        "Figure 7: Qualitative results from full fine-tuning on QXSLAB-SAROPT.",
        "general colour tones and some structure, lacks fine detail (§4.1.3)",
    ),
    "fig9": (
        "Figure 9: Qualitative results from LoRA fine-tuning on QXSLAB_SAROPT.",
        "outputs lack structural fidelity (§4.2.3)",
    ),
}
