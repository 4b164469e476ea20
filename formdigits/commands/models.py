"""`formdigits train` and `formdigits serve`: models in and out.

Heavy modules (TensorFlow, the server) are imported only once a command's
arguments have been checked, so a wrong flag fails fast.
"""

from __future__ import annotations

import os
import sys

from formdigits.args import positive_int, share

__all__ = ["add_parsers"]


def add_parsers(sub) -> None:
    _add_train(sub)
    _add_serve(sub)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model, evaluate it on held-out data, export the next version",
                       description="Train LeNet-5 or VGG16 on synthetic handwriting or a local MNIST file, "
                                   "evaluate on held-out data, and export the next SavedModel version.")
    p.add_argument("--arch", choices=("lenet5", "vgg16"), default="lenet5")
    p.add_argument("--data", choices=("synthetic", "mnist"), default="synthetic")
    p.add_argument("--mnist-path", metavar="FILE.npz", help="the Keras mnist.npz, for --data mnist")
    p.add_argument("--samples", type=positive_int, help="training samples (default: 90000 lenet5, 20000 vgg16)")
    p.add_argument("--form-crops", type=int, help="synthetic only: extra digits cut from rendered scanned forms by "
                                                  "the pipeline's segmenter (default: 20%% of --samples; 0 = none)")
    p.add_argument("--heldout-samples", type=positive_int, help="held-out samples (default: up to 10000)")
    p.add_argument("--epochs", type=positive_int, help="epochs (default: 10 lenet5, 3 vgg16)")
    p.add_argument("--augment", type=share, default=0.7, metavar="SHARE",
                   help="share of training crops given a fresh small rotation/scale/shear/shift each epoch "
                        "(default: 0.7; 0 = none)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export-dir", default="models", help="models directory (default: models)")
    p.add_argument("--vgg-weights", default="none",
                   help="vgg16 only: 'imagenet' (needs network), 'none', or a local no-top weights file")
    p.set_defaults(func=_run_train)


def _run_train(args, parser) -> int:
    if args.data == "mnist":
        if not args.mnist_path:
            parser.error("--data mnist needs --mnist-path FILE.npz (the Keras mnist.npz)")
        if not os.path.isfile(args.mnist_path):
            parser.error(f"--mnist-path {args.mnist_path!r} does not exist")
    elif args.mnist_path:
        parser.error("--mnist-path is only used with --data mnist")
    if args.arch == "vgg16" and args.vgg_weights not in ("imagenet", "none") and not os.path.isfile(args.vgg_weights):
        parser.error(f"--vgg-weights {args.vgg_weights!r} is neither 'imagenet', 'none' nor an existing file")

    from model_export.mnist import MnistFileError
    from model_export.train import TrainConfig, train

    cfg = TrainConfig(arch=args.arch, data=args.data, mnist_path=args.mnist_path, samples=args.samples,
                      heldout_samples=args.heldout_samples, epochs=args.epochs, batch_size=args.batch_size,
                      seed=args.seed, export_dir=args.export_dir, vgg_weights=args.vgg_weights,
                      form_crops=args.form_crops, augment=args.augment)
    try:
        result = train(cfg)
    except MnistFileError as exc:
        print(f"formdigits train: {exc}", file=sys.stderr)
        return 2
    card = result.card
    print(f"{card['name']} v{result.version}: held-out accuracy {result.heldout_accuracy:.2%} "
          f"({card['heldout_samples']} samples), {card['parameters']:,} parameters, "
          f"{card['training_seconds']}s -> {result.path}")
    return 0


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="serve models over TF Serving's gRPC API (local server or tensorflow_model_server)",
                       description="Serve the models directory over TF Serving's PredictionService/ModelService "
                                   "gRPC API. The local engine needs nothing installed; --engine tfserving runs "
                                   "the real tensorflow_model_server with the same config files.")
    p.add_argument("--models-dir", help="models directory (default: models; with --model-config, overrides "
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
        entries = engine.resolve_entries(args.models_dir, args.model_config)
        tls = engine.load_tls(args.tls_cert, args.tls_key)
        if args.engine == "tfserving":
            return engine.run_tfserving(entries, port=args.port, rest_port=args.rest_port,
                                        batching_config=batching_config, tls=tls,
                                        monitoring_config=args.monitoring_config or engine.DEFAULT_MONITORING_CONFIG)
        return engine.run_local(entries, batching=engine.load_batching(batching_config), host=args.host,
                                port=args.port, tensor_content=args.enable_serialization_as_tensor_content,
                                poll_s=args.poll_seconds, tls=tls)
    except (ConfigError, OSError) as exc:
        print(f"formdigits serve: {exc}", file=sys.stderr)
        return 2
