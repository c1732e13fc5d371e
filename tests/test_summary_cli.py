"""`sar2opt summary`: every network verified against the report; a tampered layer is caught."""

import re

import pytest

from keras_sar2opt import cli
from keras_sar2opt.models import MODELS, scratch
from keras_sar2opt.models.report_tables import TABLES

CHECK_LINE = re.compile(r"^(\d+|total|trainable)\s")


def check_lines(text):
    return [line for line in text.splitlines() if CHECK_LINE.match(line)]


def test_summary_all_passes_every_row(capsys):
    assert cli.main(["summary", "--all"]) == 0
    out = capsys.readouterr().out
    lines = check_lines(out)
    assert len(lines) == sum(len(table.rows) + 2 for table in TABLES.values())
    assert all(line.endswith("  ok") for line in lines)
    assert "MISMATCH" not in out
    for name in MODELS:
        assert f'Model: "{name}"' in out  # model.summary() printed
    assert "54,541,827" in out and "2,768,705" in out and "6,176,387" in out


def test_tampered_layer_fails_naming_the_row(capsys, monkeypatch):
    tampered = list(scratch.CONVS)
    tampered[2] = (96, 2)  # conv3: 128 -> 96 filters
    monkeypatch.setattr(scratch, "CONVS", tuple(tampered))
    assert cli.main(["summary", "scratch_discriminator"]) == 1
    captured = capsys.readouterr()
    mismatched = [line for line in check_lines(captured.out) if line.endswith("MISMATCH")]
    assert [line.split()[0] for line in mismatched] == ["5", "6", "7", "total"]
    assert "scratch_discriminator Table 1 row 5 (Conv2D: conv3)" in captured.err
    assert "Table 1 Total params" in captured.err


def test_unknown_model_is_a_one_line_error(capsys):
    assert cli.main(["summary", "unet"]) == 1
    err = capsys.readouterr().err
    # Other libraries may log to stderr too; the command's own error is one line, with no traceback.
    (error,) = [line for line in err.splitlines() if line.startswith("sar2opt summary: error:")]
    assert "Traceback" not in err
    assert "received 'unet'" in error and "unet_generator" in error


@pytest.mark.parametrize(
    "argv, line",
    [
        (["summary"], "sar2opt summary: error: Expected MODEL names or --all, received neither"),
        (
            ["summary", "--all", "wgan_critic"],
            "sar2opt summary: error: Expected MODEL names or --all, received both (wgan_critic and --all)",
        ),
        (["train"], "sar2opt train: error: Expected --experiment NAME or --resume RUN_DIR, received neither"),
        (
            ["evaluate", "--model", "g.keras", "-o", "out"],
            "sar2opt evaluate: error: Expected --data, or a "
            "--split-file in a run folder (its config.json names the "
            "data), received neither",
        ),
    ],
)
def test_either_of_two_options_missing_is_a_malformed_command_line(argv, line, capsys):
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == line + "\n"


@pytest.mark.parametrize(
    "argv, line",
    [
        (["train", "--experimnt", "patchgan"], "sar2opt train: error: unrecognized arguments: --experimnt patchgan"),
        (
            ["evaluate", "--model", "g.keras"],
            "sar2opt evaluate: error: the following arguments are required: -o/--output",
        ),
        (["bogus"], "sar2opt: error: argument COMMAND: invalid choice: 'bogus'"),
    ],
)
def test_malformed_command_lines_are_one_line_from_their_subcommand(argv, line, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith(line)


def test_output_options_share_one_spelling_across_commands():
    for argv in (
        ["train", "--experiment", "patchgan"],
        ["benchmark"],
        ["convert", "g.pth", "--discriminator", "d.pth"],
    ):
        short, long = (vars(cli.parse([*argv, flag, "OUT"])) for flag in ("-o", "--output"))
        assert short == long and short["out" if "out" in short else "output"] == "OUT"
    assert cli.parse(["train", "--experiment", "patchgan", "-o", "RUN"]).out == "RUN"
    assert (
        cli.parse(["train", "--experiment", "patchgan", "--out", "RUN"]).out == "RUN"
    )  # --out is an alias of --output
    assert cli.parse(["convert", "g.pth", "--disc", "d.pth", "-o", "g.keras"]).disc == "d.pth"
    assert cli.parse(["convert", "g.pth", "--discriminator", "d.pth", "-o", "g.keras"]).disc == "d.pth"


def test_train_help_lists_each_experiments_defaults_marking_the_assumed(capsys):
    from keras_sar2opt.experiments import EXPERIMENTS

    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    rows = {
        line.split()[0]: line.split()
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("  ") and line.split()[0] in EXPERIMENTS
    }
    assert set(rows) == set(EXPERIMENTS)
    for name, config in EXPERIMENTS.items():
        epochs = rows[name][-5]
        assert epochs == f"{config.epochs}*" if "epochs" in config.assumed else epochs == str(config.epochs)
    assert rows["finetune-full"][-5:] == ["50", "32", "5e-05", "5e-05*", "100"]  # Table 6; D's rate assumed
