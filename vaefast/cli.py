"""Command-line interface: ``python -m vaefast {demo,train,encode,sample,evaluate,info,export,walkthrough}``.

Every user error (missing file, bad shape, values outside [0, 1] for the
Bernoulli likelihood, unknown data set) prints one line to stderr and
returns exit code 2, never a traceback.
"""

import argparse
import os
import sys
import time

import numpy as np


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


def _parse_hidden(text):
    try:
        widths = tuple(int(t) for t in str(text).split(",") if t.strip())
    except ValueError:
        raise CLIError(f"--hidden must be comma-separated integers like 400 or 512,256, got {text!r}")
    if not widths or any(w < 1 for w in widths):
        raise CLIError(f"--hidden must list positive widths, got {text!r}")
    return widths


def load_data(spec, key=None, data_dir=None):
    """Load a data matrix for the CLI.

    Parameters
    ----------
    spec : str
        A .npy, .npz or .csv file, or the name ``fashion-mnist`` (or ``digits``).
    key : str, optional
        Array name inside a .npz (default: its single array).
    data_dir : str, optional
        Folder of the Fashion-MNIST IDX files.

    Returns
    -------
    ndarray of float32, shape (n, d)
    """
    if spec == "fashion-mnist":
        from .datasets import load_fashion_mnist
        try:
            X, _ = load_fashion_mnist(data_dir)
        except (FileNotFoundError, ValueError) as exc:
            raise CLIError(str(exc))
        return X
    if spec == "digits":
        from .datasets import load_digits
        try:
            return load_digits()
        except ImportError as exc:
            raise CLIError(str(exc))
    ext = os.path.splitext(spec)[1].lower()
    if ext not in (".npy", ".npz", ".csv"):
        raise CLIError(f"unknown data {spec!r}: expected a .npy, .npz or .csv file, "
                       "or the data set name 'fashion-mnist'")
    if not os.path.exists(spec):
        raise CLIError(f"data file not found: {spec}")
    try:
        if ext == ".npy":
            X = np.load(spec, allow_pickle=False)
        elif ext == ".npz":
            with np.load(spec, allow_pickle=False) as z:
                names = list(z.files)
                if key is None:
                    if len(names) != 1:
                        raise CLIError(f"{spec} holds arrays {names}: choose one with --key")
                    key = names[0]
                if key not in names:
                    raise CLIError(f"{spec} has no array {key!r} (it has {names})")
                X = z[key]
        else:
            X = np.loadtxt(spec, delimiter=",", dtype=np.float64, ndmin=2)
    except CLIError:
        raise
    except Exception as exc:  # corrupt file, non-numeric CSV...
        raise CLIError(f"cannot read {spec}: {exc}")
    X = np.asarray(X)
    if X.ndim != 2:
        raise CLIError(f"{spec}: expected a 2-D array (rows × features), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise CLIError(f"{spec}: empty array of shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise CLIError(f"{spec}: expected real numbers, got dtype {X.dtype}")
    X = X.astype(np.float32)
    if not np.all(np.isfinite(X)):
        raise CLIError(f"{spec}: contains NaN or infinite values")
    return X


def _check_for_model(X, model, spec):
    if X.shape[1] != model.n_features:
        raise CLIError(f"{spec}: {X.shape[1]} features per row, the model expects {model.n_features}")
    _check_range(X, model.likelihood, spec)


def _check_range(X, likelihood, spec):
    if likelihood == "bernoulli" and (X.min() < 0 or X.max() > 1):
        raise CLIError(f"{spec}: values in [{X.min():g}, {X.max():g}] but the Bernoulli likelihood "
                       "needs [0, 1]: scale the data or use --likelihood gaussian")


def _load_model(path):
    from .model import VAE
    if not os.path.exists(path):
        raise CLIError(f"model file not found: {path}")
    try:
        return VAE.load(path)
    except Exception as exc:
        raise CLIError(f"cannot load model {path}: {exc}")


def _table_header():
    return f"{'epoch':>5} {'loss':>10} {'recon':>10} {'KL':>8} {'val_loss':>10} {'seconds':>8}"


def _table_row(epoch, logs):
    return (f"{epoch + 1:>5} {logs['loss']:>10.3f} {logs['recon']:>10.3f} {logs['kl']:>8.3f} "
            f"{logs['val_loss']:>10.3f} {logs['seconds']:>8.3f}")


def _printing_callback(out):
    def cb(epoch, logs):
        print(_table_row(epoch, logs), file=out, flush=True)
    return cb


def _cmd_demo(args, out):
    from . import _png
    from .datasets import load_digits
    from .model import VAE
    try:
        X, _ = load_digits(return_y=True)
    except ImportError:
        print('the demo needs scikit-learn for its digits data: pip install "vaefast[sklearn]"',
              file=sys.stderr)
        return 2
    perm = np.random.default_rng(args.seed).permutation(len(X))
    n_val = len(X) // 10
    X_val, X_train = X[perm[:n_val]], X[perm[n_val:]]
    model = VAE(64, hidden=(128,), latent_dim=8, likelihood="bernoulli", seed=args.seed)
    print(f"vaefast demo: {model!r}", file=out)
    print(f"digits: {len(X_train)} training rows, {len(X_val)} validation rows, 64 pixels in [0, 1]",
          file=out)
    print(_table_header(), file=out)
    t0 = time.perf_counter()
    model.fit(X_train, epochs=args.epochs, batch_size=64, learning_rate=3e-3,
              validation_data=X_val, callbacks=[_printing_callback(out)], progress=False)
    print(f"trained in {time.perf_counter() - t0:.2f} s", file=out)
    os.makedirs(args.out, exist_ok=True)
    samples = model.sample(64, seed=args.seed)
    p1 = _png.write_png(os.path.join(args.out, "samples.png"),
                        _upscale(_png.tile(samples, 8, 8, 8), 4))
    originals = X_val[:16]
    recon = model.reconstruct(originals)
    grid = _png.tile(np.concatenate([originals, recon]), 2, 16, 8)
    p2 = _png.write_png(os.path.join(args.out, "reconstructions.png"), _upscale(grid, 4))
    print(f"wrote {p1}", file=out)
    print(f"wrote {p2} (top: originals, bottom: reconstructions)", file=out)
    return 0


def _upscale(img, k):
    return np.kron(img, np.ones((k, k)))


def _cmd_train(args, out):
    from .model import VAE
    X = load_data(args.data, args.key, args.data_dir)
    _check_range(X, args.likelihood, args.data)
    hidden = _parse_hidden(args.hidden)
    try:
        model = VAE(X.shape[1], hidden=hidden, latent_dim=args.latent_dim,
                    likelihood=args.likelihood, seed=args.seed)
    except (ValueError, TypeError) as exc:
        raise CLIError(str(exc))
    print(f"training {model!r} on {X.shape[0]} rows", file=out)
    print(_table_header(), file=out)
    try:
        model.fit(X, epochs=args.epochs, batch_size=args.batch_size,
                  learning_rate=args.learning_rate, callbacks=[_printing_callback(out)],
                  progress=False)
    except (ValueError, TypeError) as exc:
        raise CLIError(str(exc))
    model.save(args.out)
    print(f"wrote {args.out}", file=out)
    return 0


def _cmd_encode(args, out):
    model = _load_model(args.model)
    X = load_data(args.data, args.key, args.data_dir)
    _check_for_model(X, model, args.data)
    Z = model.transform(X)
    np.save(args.out, Z)
    print(f"wrote {args.out} {Z.shape}", file=out)
    return 0


def _cmd_sample(args, out):
    from . import _png
    model = _load_model(args.model)
    if args.n < 1:
        raise CLIError(f"-n must be >= 1, got {args.n}")
    if not args.out and not args.png:
        raise CLIError("nothing to write: give --png FILE and/or --out X.npy")
    X = model.sample(args.n, seed=args.seed)
    if args.out:
        np.save(args.out, X)
        print(f"wrote {args.out} {X.shape}", file=out)
    if args.png:
        side = int(round(np.sqrt(model.n_features)))
        if side * side != model.n_features:
            raise CLIError(f"--png needs square images; the model has {model.n_features} features")
        cols = int(np.ceil(np.sqrt(args.n)))
        rows = int(np.ceil(args.n / cols))
        img = _png.tile(X, rows, cols, side)
        _png.write_png(args.png, _upscale(img, max(1, 64 // side)))
        print(f"wrote {args.png}", file=out)
    return 0


def _cmd_evaluate(args, out):
    model = _load_model(args.model)
    X = load_data(args.data, args.key, args.data_dir)
    _check_for_model(X, model, args.data)
    if args.samples < 1:
        raise CLIError(f"--samples must be >= 1, got {args.samples}")
    elbo = float(np.mean(model.elbo(X, seed=args.seed)))
    ll = float(np.mean(model.log_likelihood(X, n_samples=args.samples, seed=args.seed)))
    print(f"rows: {X.shape[0]}", file=out)
    print(f"mean ELBO: {elbo:.4f}", file=out)
    print(f"mean log-likelihood (importance-weighted, {args.samples} samples): {ll:.4f}", file=out)
    return 0


def _cmd_info(args, out):
    model = _load_model(args.model)
    for k, v in model.get_config().items():
        print(f"{k}: {v}", file=out)
    print(f"parameters: {model.num_params()}", file=out)
    print(f"training step: {model.step_}", file=out)
    print(f"epochs trained: {model.epoch_}", file=out)
    return 0


def _cmd_export(args, out):
    model = _load_model(args.model)
    if not args.onnx and not args.safetensors:
        raise CLIError("nothing to write: give --onnx FILE and/or --safetensors FILE")
    if args.onnx:
        try:
            model.to_onnx(args.onnx, part=args.part, opset=args.opset)
        except (ImportError, NotImplementedError, ValueError, TypeError) as exc:
            raise CLIError(str(exc))
        print(f"wrote {args.onnx} (ONNX {args.part}, opset {args.opset})", file=out)
    if args.safetensors:
        model.save(args.safetensors, format="safetensors")
        print(f"wrote {args.safetensors} (safetensors)", file=out)
    return 0


def _cmd_walkthrough(args, out):
    from .walkthrough import print_walkthrough
    print_walkthrough(seed=args.seed, out=out)
    return 0


def build_parser():
    """The argparse parser of the ``vaefast`` command."""
    p = argparse.ArgumentParser(prog="vaefast", description="Variational autoencoders on the CPU.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def data_args(sp):
        sp.add_argument("data", metavar="DATA",
                        help=".npy, .npz, .csv file, or 'fashion-mnist'")
        sp.add_argument("--key", help="array name inside a .npz file")
        sp.add_argument("--data-dir", help="folder of the Fashion-MNIST IDX files")

    d = sub.add_parser("demo", help="train on scikit-learn digits, write sample PNGs")
    d.add_argument("--epochs", type=int, default=15)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", default="vaefast-demo", help="output folder")

    t = sub.add_parser("train", help="train a VAE and save it")
    data_args(t)
    t.add_argument("--latent-dim", type=int, default=20)
    t.add_argument("--hidden", default="400", help="hidden widths, e.g. 400 or 512,256")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--learning-rate", type=float, default=1e-3)
    t.add_argument("--likelihood", choices=("bernoulli", "gaussian"), default="bernoulli")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, metavar="MODEL", help="where to save the model")

    e = sub.add_parser("encode", help="posterior means of DATA")
    e.add_argument("model", metavar="MODEL")
    data_args(e)
    e.add_argument("--out", required=True, help="output .npy of latent codes")

    s = sub.add_parser("sample", help="draw samples from the model")
    s.add_argument("model", metavar="MODEL")
    s.add_argument("-n", type=int, default=64)
    s.add_argument("--png", help="write an image grid (square images only)")
    s.add_argument("--out", help="write the samples as .npy")
    s.add_argument("--seed", type=int, default=None)

    v = sub.add_parser("evaluate", help="mean ELBO and log-likelihood on DATA")
    v.add_argument("model", metavar="MODEL")
    data_args(v)
    v.add_argument("--samples", type=int, default=100)
    v.add_argument("--seed", type=int, default=0)

    i = sub.add_parser("info", help="model configuration and size")
    i.add_argument("model", metavar="MODEL")

    x = sub.add_parser("export", help="write the model as ONNX and/or safetensors")
    x.add_argument("model", metavar="MODEL")
    x.add_argument("--onnx", metavar="OUT", help="ONNX file to write (needs vaefast[interop])")
    x.add_argument("--part", choices=("vae", "encoder", "decoder"), default="vae",
                   help="graph to export (default vae: x -> mean reconstruction)")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset version (default 17)")
    x.add_argument("--safetensors", metavar="OUT", help="safetensors file to write")

    w = sub.add_parser("walkthrough", help="one VAE step by hand, printed as small matrices")
    w.add_argument("--seed", type=int, default=0)
    return p


_COMMANDS = {"demo": _cmd_demo, "train": _cmd_train, "encode": _cmd_encode, "sample": _cmd_sample,
             "evaluate": _cmd_evaluate, "info": _cmd_info, "export": _cmd_export,
             "walkthrough": _cmd_walkthrough}


def main(argv=None):
    """Run the ``vaefast`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit code: 0 on success, 2 on a usage or data error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its message
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return _COMMANDS[args.command](args, sys.stdout)
    except CLIError as exc:
        print(f"vaefast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. an unwritable --out
        print(f"vaefast {args.command}: error: {exc}", file=sys.stderr)
        return 2
