"""`sar2opt app`: the browser demo (Gradio) serving a generator on loopback."""

from pathlib import Path

from keras_sar2opt.commands.options import add_model_loading_options, load_model, model_reading, onnx_model
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.presets import preset_name


def register(subparsers):
    parser = subparsers.add_parser(
        "app",
        help="a browser demo: upload a SAR image, see and download its optical translation (Gradio)",
        description=(
            "Serve a page where a SAR image (PNG, JPEG, or a float or dB GeoTIFF of any size) is uploaded, "
            "preprocessed as the report's §3.5 describes, translated and shown beside its translation, with a "
            "download. A model of a training run reads SAR as its run did. Needs the app extra: "
            "pip install 'keras_sar2opt[app]'."
        ),
    )
    parser.add_argument(
        "--model",
        required=True,
        help="generator: .keras, a run folder or checkpoint, a SAR2Optical .pth/.safetensors, preset:NAME, or an "
        "exported .onnx",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    add_model_loading_options(parser)
    parser.set_defaults(func=run)


def run(args):
    from keras_sar2opt.commands.translate import downsample_of

    if not 0 < args.port < 65536:
        raise Sar2OptError(f"Expected --port in 1..65535, received {args.port}")
    from keras_sar2opt import app

    model = onnx_model(args)
    reading = model_reading(args, model)
    if model is None:
        model = load_model(args, args.model)
    downsample, notes = downsample_of(None, reading, model)
    if reading is not None and reading.sar:
        notes = [f"SAR {reading.sar.describe()}", *notes]
    if notes:
        print(f"reading SAR as {reading.name} was trained: {'; '.join(notes)}")
    title = args.model if preset_name(args.model) else Path(args.model).name
    page = app.build(model, title=title, sar_defaults=reading and reading.sar, downsample=downsample)
    print(f"serving {args.model} at http://{args.host}:{args.port} (Ctrl+C stops)", flush=True)
    app.serve(page, args.host, args.port)
    return 0
