"""Command-line interface: ``python -m vaefast {demo,train,encode,sample,evaluate,info,export,walkthrough}``.

Every user error (missing file, bad shape, values outside [0, 1] for the
Bernoulli likelihood, unknown data set) prints one line to stderr and
returns exit code 2, never a traceback.
"""

import argparse
import io
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence, TextIO, cast

import numpy as np
from numpy.typing import NDArray

from ._spec import likelihoods
from ._typing import F32

if TYPE_CHECKING:
    from .model import VAE


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


def _parse_hidden(text: object) -> tuple[int, ...]:
    try:
        widths = tuple(int(t) for t in str(text).split(",") if t.strip())
    except ValueError:
        raise CLIError(f"--hidden must be comma-separated integers like 400 or 512,256, got {text!r}")
    if not widths or any(w < 1 for w in widths):
        raise CLIError(f"--hidden must list positive widths, got {text!r}")
    return widths


def load_data(spec: str, key: Optional[str] = None, data_dir: Optional[str] = None) -> F32:
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


def load_conditions(spec: str, X: F32, n_conditions: Optional[int] = None,
                    key: Optional[str] = None,
                    data_dir: Optional[str] = None) -> tuple[F32, F32]:
    """The conditions of a conditional model for the rows of X.

    Parameters
    ----------
    spec : str
        A column of DATA (an integer index, e.g. ``0`` or ``-1``) holding
        class labels 0..k-1, which is removed from X; or a file (as for
        DATA) holding one row per row of X: class labels (a 1-D array, or a
        single column of integers) or the condition matrix itself.
    X : ndarray, shape (n, d)
    n_conditions : int, optional
        The model's width (labels are one-hot encoded to it); default:
        largest label + 1, or the matrix's width.

    Returns
    -------
    X : ndarray (X without the label column, if one was named)
    c : ndarray of float32, shape (n, n_conditions)
    """
    labels: NDArray[Any]
    col: Optional[int]
    try:
        col = int(spec)
    except ValueError:
        col = None
    if col is not None:
        if not -X.shape[1] <= col < X.shape[1]:
            raise CLIError(f"--conditions {spec}: DATA has {X.shape[1]} columns")
        labels, X = X[:, col], np.delete(X, col, axis=1)
    else:
        if spec.lower().endswith(".npy") and os.path.exists(spec):
            raw = np.load(spec, allow_pickle=False)
            if raw.ndim == 1:
                raw = raw[:, None]
            labels_or_c = raw
        else:
            labels_or_c = load_data(spec, key, data_dir)
        c = np.asarray(labels_or_c, dtype=np.float64)
        if c.shape[0] != X.shape[0]:
            raise CLIError(f"--conditions {spec}: {c.shape[0]} rows, DATA has {X.shape[0]}")
        if c.shape[1] != 1 or np.any(c != np.round(c)):
            if n_conditions is not None and c.shape[1] != n_conditions:
                raise CLIError(f"--conditions {spec}: {c.shape[1]} columns, the model has "
                               f"n_conditions={n_conditions}")
            return X, c.astype(np.float32)
        labels = c[:, 0]
    if np.any(labels < 0) or np.any(labels != np.round(labels)):
        raise CLIError(f"--conditions {spec}: class labels must be integers 0, 1, ...")
    labels = labels.astype(np.int64)
    k = int(labels.max()) + 1 if n_conditions is None else n_conditions
    if labels.max() >= k:
        raise CLIError(f"--conditions {spec}: label {labels.max()} but the model has "
                       f"n_conditions={k}")
    return X, np.eye(k, dtype=np.float32)[labels]


def _data_and_conditions(args: argparse.Namespace,
                         model: "Optional[VAE]" = None) -> tuple[F32, Optional[F32]]:
    """DATA (and its conditions, for a conditional model) of a command."""
    X = load_data(args.data, args.key, args.data_dir)
    c = None
    if getattr(args, "conditions", None):
        X, c = load_conditions(args.conditions, X, model.n_conditions if model else None,
                               args.key, args.data_dir)
    if model is not None:
        if model.n_conditions and c is None:
            raise CLIError(f"the model is conditional (n_conditions={model.n_conditions}): "
                           "give --conditions FILE|COLUMN")
        if not model.n_conditions and c is not None:
            raise CLIError("--conditions given but the model is unconditional")
        _check_for_model(X, model, args.data)
    return X, c


def _check_for_model(X: F32, model: "VAE", spec: str) -> None:
    if X.shape[1] != model.n_features:
        raise CLIError(f"{spec}: {X.shape[1]} features per row, the model expects {model.n_features}")
    _check_range(X, model.likelihood, spec)


def _check_range(X: F32, likelihood: str, spec: str) -> None:
    from ._validation import check_targets
    try:
        check_targets(X, likelihood, spec)
    except ValueError as exc:
        raise CLIError(f"{exc}, or choose another likelihood such as --likelihood "
                       f"{likelihoods.GAUSSIAN.name}")


def _load_model(path: str) -> "VAE":
    from .model import VAE
    if not os.path.exists(path):
        raise CLIError(f"model file not found: {path}")
    try:
        return VAE.load(path)
    except Exception as exc:
        raise CLIError(f"cannot load model {path}: {exc}")


def _table_header() -> str:
    return f"{'epoch':>5} {'loss':>10} {'recon':>10} {'KL':>8} {'val_loss':>10} {'seconds':>8}"


def _table_row(epoch: int, logs: Mapping[str, float]) -> str:
    return (f"{epoch + 1:>5} {logs['loss']:>10.3f} {logs['recon']:>10.3f} {logs['kl']:>8.3f} "
            f"{logs['val_loss']:>10.3f} {logs['seconds']:>8.3f}")


def _printing_callback(out: TextIO) -> Callable[[int, Mapping[str, float]], None]:
    def cb(epoch: int, logs: Mapping[str, float]) -> None:
        print(_table_row(epoch, logs), file=out, flush=True)
    return cb


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from .io import png as _png
    from .datasets import load_digits
    from .model import VAE
    try:
        X, y = load_digits(return_y=True)
    except ImportError:
        print('the demo needs scikit-learn for its digits data: pip install "vaefast[sklearn]"',
              file=sys.stderr)
        return 2
    perm = np.random.default_rng(args.seed).permutation(len(X))
    n_val = len(X) // 10
    X_val, X_train = X[perm[:n_val]], X[perm[n_val:]]
    model = VAE(64, hidden=(128,), latent_dim=8, likelihood=likelihoods.BERNOULLI.name,
                seed=args.seed)
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
    if args.conditional:
        _demo_conditional(args, out, X, y)
    return 0


def _demo_conditional(args: argparse.Namespace, out: TextIO, X: F32, y: NDArray[Any]) -> None:
    """A conditional VAE on digits (one-hot labels): a PNG of samples, one row per class."""
    from .io import png as _png
    from .model import VAE
    c = np.eye(10, dtype=np.float32)[y]
    model = VAE(64, hidden=(128,), latent_dim=8, n_conditions=10, seed=args.seed)
    print(f"conditional: {model!r}", file=out)
    model.fit(X, c=c, epochs=args.epochs, batch_size=64, learning_rate=3e-3, progress=False)
    per_class = 10
    labels = np.repeat(np.arange(10), per_class)
    samples = model.sample(10 * per_class, seed=args.seed,
                           c=np.eye(10, dtype=np.float32)[labels])
    path = _png.write_png(os.path.join(args.out, "samples_by_class.png"),
                          _upscale(_png.tile(samples, 10, per_class, 8), 4))
    print(f"wrote {path} (row k: samples of digit k)", file=out)


def _upscale(img: NDArray[Any], k: int) -> NDArray[Any]:
    return np.kron(img, np.ones((k, k)))


def _training_data(args: argparse.Namespace) -> NDArray[Any]:
    """A .npy is memory-mapped (fit reads it a buffer at a time, so it may be
    larger than RAM; rows are checked as they are read); the rest is loaded."""
    if not (args.data.lower().endswith(".npy") and os.path.exists(args.data)):
        return load_data(args.data, args.key, args.data_dir)
    try:
        X = np.load(args.data, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise CLIError(f"cannot read {args.data}: {exc}")
    if X.ndim != 2 or 0 in X.shape or not np.issubdtype(X.dtype, np.number):
        raise CLIError(f"{args.data}: expected a non-empty 2-D array of numbers, got shape "
                       f"{X.shape} and dtype {X.dtype}")
    return cast("NDArray[Any]", X)


def _mpi_comm() -> Any:
    try:
        from mpi4py import MPI
    except ImportError:
        raise CLIError("--distributed needs mpi4py and an MPI library "
                       "(pip install 'vaefast[mpi]'), run under mpiexec")
    return MPI.COMM_WORLD


def _cmd_train(args: argparse.Namespace, out: TextIO) -> int:
    from .model import VAE
    if getattr(args, "conditions", None):
        X, c = _data_and_conditions(args)
    else:
        X, c = _training_data(args), None  # a .npy is streamed, not loaded
    comm = None
    if args.distributed:
        if c is not None:
            raise CLIError("--distributed does not take --conditions yet")
        from .distributed import shard_rows
        comm = _mpi_comm()
        X = X[shard_rows(X.shape[0], comm.Get_size(), comm.Get_rank())]
        if comm.Get_rank() != 0:
            out = io.StringIO()  # rank 0 reports and saves
    _check_range(X, args.likelihood, args.data)
    hidden = _parse_hidden(args.hidden)
    try:
        model = VAE(X.shape[1], hidden=hidden, latent_dim=args.latent_dim,
                    likelihood=args.likelihood, seed=args.seed, variance=args.variance,
                    n_conditions=0 if c is None else c.shape[1])
    except (ValueError, TypeError) as exc:
        raise CLIError(str(exc))
    print(f"training {model!r} on {X.shape[0]} rows", file=out)
    print(_table_header(), file=out)
    try:
        model.fit(X, c=c, epochs=args.epochs, batch_size=args.batch_size,
                  learning_rate=args.learning_rate, callbacks=[_printing_callback(out)],
                  progress=False, comm=comm)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CLIError(str(exc))
    if comm is not None and comm.Get_rank() != 0:
        return 0
    model.save(args.out)
    print(f"wrote {args.out}", file=out)
    return 0


def _cmd_encode(args: argparse.Namespace, out: TextIO) -> int:
    model = _load_model(args.model)
    X, c = _data_and_conditions(args, model)
    Z = model.transform(X, c)
    np.save(args.out, Z)
    print(f"wrote {args.out} {Z.shape}", file=out)
    return 0


def _cmd_sample(args: argparse.Namespace, out: TextIO) -> int:
    from .io import png as _png
    model = _load_model(args.model)
    if args.n < 1:
        raise CLIError(f"-n must be >= 1, got {args.n}")
    if not args.out and not args.png:
        raise CLIError("nothing to write: give --png FILE and/or --out X.npy")
    c = None
    if model.n_conditions:
        if args.label is None or not 0 <= args.label < model.n_conditions:
            raise CLIError(f"the model is conditional: give --label K, 0 <= K < "
                           f"{model.n_conditions} (the class to sample)")
        c = np.zeros((args.n, model.n_conditions), np.float32)
        c[:, args.label] = 1.0
    elif args.label is not None:
        raise CLIError("--label given but the model is unconditional")
    X = model.sample(args.n, seed=args.seed, c=c)
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


def _cmd_evaluate(args: argparse.Namespace, out: TextIO) -> int:
    model = _load_model(args.model)
    X, c = _data_and_conditions(args, model)
    if args.samples < 1:
        raise CLIError(f"--samples must be >= 1, got {args.samples}")
    elbo = float(np.mean(model.elbo(X, seed=args.seed, c=c)))
    ll = float(np.mean(model.log_likelihood(X, n_samples=args.samples, seed=args.seed, c=c)))
    print(f"rows: {X.shape[0]}\nmean ELBO: {elbo:.4f}\nmean log-likelihood "
          f"(importance-weighted, {args.samples} samples): {ll:.4f}", file=out)
    return 0


def _cmd_info(args: argparse.Namespace, out: TextIO) -> int:
    if args.model is None:  # the installation, for a bug report
        from . import _info
        print("\n".join(_info.report()), file=out)
        return 0
    model = _load_model(args.model)
    from .io.serialize import saved_by
    print(f"written by: {saved_by(args.model) or 'a vaefast before it was recorded'}", file=out)
    for k, v in model.get_config().items():
        print(f"{k}: {v}", file=out)
    print(f"parameters: {model.num_params()}\ntraining step: {model.step_}\n"
          f"epochs trained: {model.epoch_}", file=out)
    return 0


def _cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    model = _load_model(args.model)
    if not args.onnx and not args.safetensors:
        raise CLIError("nothing to write: give --onnx FILE and/or --safetensors FILE")
    if args.onnx:
        try:
            from .interop import to_onnx

            to_onnx(model, args.onnx, part=args.part, opset=args.opset)
        except (ImportError, NotImplementedError, ValueError, TypeError) as exc:
            raise CLIError(str(exc))
        print(f"wrote {args.onnx} (ONNX {args.part}, opset {args.opset})", file=out)
    if args.safetensors:
        model.save(args.safetensors, format="safetensors")
        print(f"wrote {args.safetensors} (safetensors)", file=out)
    return 0


def _cmd_walkthrough(args: argparse.Namespace, out: TextIO) -> int:
    if args.model == "scvi":
        from .reference.walkthrough_scvi import print_scvi_walkthrough
        print_scvi_walkthrough(seed=args.seed, dispersion=args.dispersion, out=out)
        return 0
    from .reference.walkthrough import print_walkthrough
    print_walkthrough(seed=args.seed, out=out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``vaefast`` command."""
    from ._version import __version__
    p = argparse.ArgumentParser(prog="vaefast", description="Variational autoencoders on the CPU.")
    p.add_argument("--version", action="version", version=f"vaefast {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def data_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("data", metavar="DATA",
                        help=".npy, .npz, .csv file, or 'fashion-mnist'")
        sp.add_argument("--key", help="array name inside a .npz file")
        sp.add_argument("--data-dir", help="folder of the Fashion-MNIST IDX files")
        sp.add_argument("--conditions", metavar="FILE|COLUMN",
                        help="conditional models: class labels 0..k-1 in column COLUMN of "
                             "DATA (removed from it), or a file of labels or of condition "
                             "vectors, one row per row of DATA")

    d = sub.add_parser("demo", help="train on scikit-learn digits, write sample PNGs")
    d.add_argument("--epochs", type=int, default=15)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", default="vaefast-demo", help="output folder")
    d.add_argument("--conditional", action="store_true",
                   help="also train a conditional VAE on the labels and write "
                        "samples_by_class.png (one row per digit)")

    t = sub.add_parser("train", help="train a VAE and save it")
    data_args(t)
    t.add_argument("--latent-dim", type=int, default=20)
    t.add_argument("--hidden", default="400", help="hidden widths, e.g. 400 or 512,256")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--learning-rate", type=float, default=1e-3)
    t.add_argument("--likelihood", choices=likelihoods.NAMES, default=likelihoods.DEFAULT)
    t.add_argument("--variance", choices=likelihoods.VARIANCES, default="unit",
                   help="Gaussian variance: unit, learned per feature, or per sample")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, metavar="MODEL", help="where to save the model")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI: run under mpiexec; each rank trains on its "
                        "share of the rows, --batch-size is the global minibatch")

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
    s.add_argument("--label", type=int, default=None,
                   help="conditional models: the class (one-hot index) to sample")

    v = sub.add_parser("evaluate", help="mean ELBO and log-likelihood on DATA")
    v.add_argument("model", metavar="MODEL")
    data_args(v)
    v.add_argument("--samples", type=int, default=100)
    v.add_argument("--seed", type=int, default=0)

    i = sub.add_parser("info", help="this installation (for bug reports), or with MODEL: "
                                    "the model's configuration and size")
    i.add_argument("model", metavar="MODEL", nargs="?")

    x = sub.add_parser("export", help="write the model as ONNX and/or safetensors")
    x.add_argument("model", metavar="MODEL")
    x.add_argument("--onnx", metavar="OUT", help="ONNX file to write (needs vaefast[interop])")
    x.add_argument("--part", choices=("vae", "encoder", "decoder"), default="vae",
                   help="graph to export (default vae: x -> mean reconstruction)")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset version (default 17)")
    x.add_argument("--safetensors", metavar="OUT", help="safetensors file to write")

    w = sub.add_parser("walkthrough", help="one VAE step by hand, printed as small matrices")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--model", choices=("vae", "scvi"), default="vae",
                   help="the plain VAE (Gaussian) or the single-cell model (ZINB, batch, dropout)")
    w.add_argument("--dispersion", choices=("gene", "gene-batch"), default="gene-batch",
                   help="with --model scvi: log theta per gene, or per gene and batch")
    return p


_COMMANDS = {"demo": _cmd_demo, "train": _cmd_train, "encode": _cmd_encode, "sample": _cmd_sample,
             "evaluate": _cmd_evaluate, "info": _cmd_info, "export": _cmd_export,
             "walkthrough": _cmd_walkthrough}


def main(argv: Optional[Sequence[str]] = None) -> int:
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
