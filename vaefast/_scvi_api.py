"""AnnData in and out with scvi-tools' method names (a mixin of VAE).

``VAE.from_anndata`` builds a model whose shapes and conditions come from an
AnnData (vaefast/_anndata_setup.py stores the keys and categories with the
model); the methods here read cells from an AnnData (or any X the model's
methods take) and answer as scvi-tools' SCVI methods of the same names:
``get_latent_representation``, ``posterior_predictive_sample`` and
``differential_expression``. ``get_normalized_expression`` is
vaefast/_expression.py's. Neither anndata nor pandas nor scipy is imported
until one of these is called.
"""

from typing import TYPE_CHECKING, Any, Iterator, Optional, TypeVar, Union, cast

import numpy as np
from numpy.typing import NDArray

from . import _anndata_setup, _hidden_options, _rows
from ._spec.limits import LIMITS
from ._covariate_codes import take
from ._typing import F32
from ._validation import as_int

if TYPE_CHECKING:
    from ._spec.likelihoods import Likelihood
    from .model import VAE

_S = TypeVar("_S", bound="ScviToolsMethods")

_DE_COLUMNS = ("proba_de", "proba_not_de", "bayes_factor", "lfc_mean", "lfc_median",
               "lfc_std", "scale1", "scale2")


def _require_anndata(adata: object, method: str) -> None:
    if not _rows.is_anndata(adata):
        raise TypeError(f"adata must be an AnnData for {method}, got "
                        f"{type(adata).__name__}")


class ScviToolsMethods:
    """from_anndata and scvi-tools-named methods of VAE (docs/single-cell.md)."""

    anndata_setup_: Optional[_anndata_setup.Setup] = None  # from_anndata's keys (else None)

    if TYPE_CHECKING:  # what these methods use of the VAE they are mixed into
        _lik: "Likelihood"
        likelihood: str
        n_features: int

        def __init__(self, n_features: int, **kwargs: Any) -> None: ...
        def _encode_checked(self, X: F32, c: Any, precision: Optional[str]) -> tuple[F32, F32]: ...
        def _check_X(self, X: object, name: str = ..., targets: bool = ...) -> F32: ...
        def _check_c(self, c: object, n: int, name: str = ..., codes: object = ...) -> Any: ...
        def _extra_param(self) -> Optional[F32]: ...
        def _log_theta_rows(self, raw: "np.ndarray[Any, Any]",
                            side: Any) -> "Optional[np.ndarray[Any, Any]]": ...
        def _decode_raw(self, Z: F32, mean: bool, c: Any = ...,
                        size_factors: Optional[F32] = ...) -> F32: ...

    @classmethod
    def from_anndata(cls: type[_S], adata: Any, layer: Optional[str] = None,
                     batch_key: Optional[str] = None,
                     categorical_covariate_keys: Union[str, tuple[str, ...], list[str]] = (),
                     continuous_covariate_keys: Union[str, tuple[str, ...], list[str]] = (),
                     labels_key: Optional[str] = None, **model_kwargs: Any) -> _S:
        """A VAE for the cells of `adata`, conditioned on its obs columns.

        n_features is the AnnData's number of variables. As in scVI,
        `batch_key` and the categorical keys are the model's categorical
        covariates (``categorical_covariates``, the batch first: one code
        per cell and key, added to the injected layers by a gather-add;
        ``deeply_inject_covariates`` and ``encode_covariates`` may be
        passed), and the continuous keys its conditions c, as floats
        (unscaled). The keys, the category lists and `layer` are stored with
        the model (and in its saved file): ``fit``, every inference method
        and the methods below, given an AnnData and no ``c``/``codes``,
        build them (by category value, so another AnnData listing the
        categories in another order maps alike) and read the stored layer
        unless ``layer=`` is given. Models saved by older versions (the
        categories as one-hot conditions) still load and run.

        Parameters
        ----------
        adata : anndata.AnnData
        layer : str, optional
            The layer of counts (default: ``adata.X``).
        batch_key : str, optional
            obs column of the batch (its categories: ``transform_batch``).
        categorical_covariate_keys, continuous_covariate_keys : sequence of str
        labels_key : str, optional
            obs column of the cells' labels, for ``dispersion="gene-label"``
            only (θ per gene and label; ``n_labels`` is its categories).
        **model_kwargs
            The other arguments of VAE (``likelihood="zinb"``, ``hidden``...).

        Raises
        ------
        KeyError
            If a key is not an obs column or `layer` not a layer (named).
        ValueError
            If a column has a missing value, a continuous one is not numeric
            and finite (named), or model_kwargs set n_features, n_conditions or
            categorical_covariates.
        """
        _require_anndata(adata, "from_anndata")
        for taken in ("n_features", "n_conditions", "categorical_covariates", "n_labels"):
            if taken in model_kwargs:
                raise ValueError(f"{taken} comes from the AnnData; do not pass it")
        if layer is not None:
            _rows.resolve(adata, "adata", layer)  # names an unknown layer
        setup = _anndata_setup.make_setup(adata, layer, batch_key,
                                          categorical_covariate_keys,
                                          continuous_covariate_keys, labels_key)
        model_kwargs = {**_hidden_options.SCVI_DEFAULTS, **model_kwargs}
        if labels_key is not None:
            if model_kwargs.get("dispersion") != "gene-label":
                raise ValueError("labels_key is only for dispersion='gene-label', got "
                                 f"dispersion={model_kwargs.get('dispersion', 'gene')!r}")
            model_kwargs["n_labels"] = len(setup["labels"][1])
        model = cls(adata.n_vars, n_conditions=_anndata_setup.n_conditions(setup),
                    categorical_covariates=_anndata_setup.levels(setup), **model_kwargs)
        model.anndata_setup_ = setup
        return model

    def get_latent_representation(self, adata: Any, c: Any = None, layer: Optional[str] = None,
                                  give_mean: bool = True, seed: int = 0,
                                  codes: Any = None) -> F32:
        """The latent code of each cell: the posterior mean (``transform``),
        or with ``give_mean=False`` one draw z ~ q(z|x) seeded by `seed`.

        Parameters
        ----------
        adata : AnnData, array_like or scipy sparse matrix, shape (n, n_features)
        c : array_like, shape (n, n_conditions), optional
            Built from the model's AnnData setup when adata is an AnnData.
        layer : str, optional (AnnData only; default: the stored layer)
        codes : array_like of int, shape (n, K), optional
            The categorical covariates; built like c.

        Returns
        -------
        ndarray, shape (n, latent_dim), float32
        """
        extra = {"codes": codes, **({} if layer is None else {"layer": layer})}
        model: Any = self  # layer= is taken by the AnnData engine (_gathered.py)
        if give_mean:
            return cast(F32, model.transform(adata, c, **extra))
        mu, logvar = model.encode(adata, c, **extra)
        eps = np.random.default_rng(seed).standard_normal(mu.shape).astype(np.float32)
        return cast(F32, mu + np.exp(0.5 * logvar) * eps)

    def posterior_predictive_sample(self, adata: Any, n_samples: int = 1, c: Any = None,
                                    layer: Optional[str] = None, seed: int = 0,
                                    codes: Any = None) -> Any:
        """Counts drawn from p(x | z) with z ~ q(z | x), for each cell.

        Each draw: z from the cell's posterior, the decoder's mean
        library · softmax(rho) (library = the cell's observed total count),
        then a count per gene from the model's likelihood with that mean:
        Poisson ("scvi_poisson"), negative binomial of the model's per-gene
        θ ("scvi_nb", as a gamma-Poisson mixture), or that negative binomial
        zeroed with probability sigmoid(the zero-inflation logit) ("zinb").

        Parameters
        ----------
        adata : AnnData, array_like or scipy sparse matrix, shape (n, n_features)
        n_samples : int, >= 1
        c, layer, codes : as for get_latent_representation
        seed : int
            Seeds every draw (same seed, same counts).

        Returns
        -------
        scipy.sparse.csr_matrix (n, n_features) of float32 counts, or a dense
        ndarray when scipy is not installed; a list of n_samples of them when
        n_samples > 1.
        """
        if not self._lik.observed_library:
            raise ValueError("posterior_predictive_sample needs a likelihood with scVI's "
                             f"mean ('zinb', 'scvi_nb', 'scvi_poisson'), not "
                             f"{self.likelihood!r}")
        n_samples = as_int(n_samples, "n_samples", minimum=1)
        if _rows.is_anndata(adata):
            c, layer = _anndata_setup.fill(self, adata, c, layer)
            codes = _anndata_setup.fill_codes(self, adata, codes)
        rows = _rows.resolve(adata, "adata", layer)
        n = rows.shape[0]
        side = self._check_c(c, n, codes=codes)
        rng = np.random.default_rng(seed)
        step = _rows.chunk_rows(self.n_features, 4096)
        parts: list[list[Any]] = [[] for _ in range(n_samples)]
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            X = rows.take(slice(lo, hi)) if isinstance(rows, _rows.Rows) else rows[lo:hi]
            X = self._check_X(X, "adata", targets=True)
            cc = take(side, slice(lo, hi))
            for k, counts in enumerate(self._draw_counts(X, cc, n_samples, rng)):
                parts[k].append(_sparse_if_possible(counts))
        out = [_stack(p) for p in parts]
        return out[0] if n_samples == 1 else out

    def _draw_counts(self, X: F32, c: Any, n_samples: int,
                     rng: np.random.Generator) -> Iterator[F32]:
        """n_samples arrays of counts for the rows X (checked counts; c the
        checked side inputs)."""
        mu, logvar = self._encode_checked(X, c, None)
        library = X.sum(axis=1, dtype=np.float64)
        D = self.n_features
        for _ in range(n_samples):
            z = mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape).astype(np.float32)
            raw = self._decode_raw(z, False, c).astype(np.float64)
            log_theta = self._log_theta_rows(raw, c)  # (D,) or per row (n, D)
            theta = None if log_theta is None else np.exp(np.clip(
                log_theta, LIMITS["log_theta_min"], LIMITS["log_theta_max"]))
            rho = raw[:, :D]
            p = np.exp(rho - rho.max(axis=1, keepdims=True))
            mean = library[:, None] * p / p.sum(axis=1, keepdims=True)
            rate = mean if theta is None else rng.gamma(theta, mean / theta)
            counts = rng.poisson(rate).astype(np.float32)
            if "output_pi" in self._lik.heads:  # zero-inflation logits: the second head
                dropout = rng.random(counts.shape) < 1.0 / (1.0 + np.exp(-raw[:, D:2 * D]))
                counts[dropout] = 0.0
            yield counts

    def differential_expression(self, adata: Any, groupby: str, group1: object,
                                group2: object = None, mode: str = "change",
                                delta: float = 0.25, n_draws: int = 5000,
                                pseudocount: Optional[float] = None, seed: int = 0,
                                layer: Optional[str] = None, c: Any = None,
                                test_mode: str = "three",
                                threshold_counts: float = 0.01, codes: Any = None) -> Any:
        """Per-gene evidence of a change between two groups of cells
        (:func:`vaefast.single_cell.differential_expression` on the AnnData).

        Parameters
        ----------
        adata : anndata.AnnData
        groupby : str
            obs column holding the groups.
        group1, group2 :
            Its values compared; ``group2=None``: group1 against all others.
        mode : {"change", "vanilla"}
            As scvi-tools' modes (bayes_factor of |LFC| > delta, or of h1 > h2).
        delta, n_draws, pseudocount, seed, test_mode, threshold_counts :
            As :func:`vaefast.single_cell.differential_expression` (scvi-tools'
            defaults: pseudocount estimated, proba_de the larger one-sided
            probability).
        layer, c, codes : optional; default: the model's AnnData setup.

        Returns
        -------
        pandas.DataFrame indexed by ``adata.var_names`` (most evident change
        first) with columns proba_de, proba_not_de, bayes_factor, lfc_mean,
        lfc_median, lfc_std, scale1, scale2 (and proba_m1, proba_m2 in
        "vanilla" mode); without pandas a NumPy structured array with those
        fields and ``gene``, in the same order.
        """
        from .single_cell import differential_expression

        _require_anndata(adata, "differential_expression")
        if not isinstance(groupby, str) or groupby not in adata.obs.columns:
            raise KeyError(f"groupby={groupby!r} is not a column of adata.obs")
        c, layer = _anndata_setup.fill(self, adata, c, layer)
        codes = _anndata_setup.fill_codes(self, adata, codes)
        groups = np.asarray(adata.obs[groupby].astype(object))
        de = differential_expression(cast("VAE", self), _rows.resolve(adata, "adata", layer), groups,
                                     group1, group2, c=c, n_draws=n_draws, delta=delta,
                                     pseudocount=pseudocount, seed=seed, mode=mode,
                                     test_mode=test_mode, threshold_counts=threshold_counts,
                                     codes=codes)
        return _table(de, np.asarray(adata.var_names.astype(str)), mode)


def _table(de: dict[str, NDArray[Any]], genes: NDArray[Any], mode: str) -> Any:
    """The DE dict as a DataFrame (or structured array), rows in rank order."""
    columns = _DE_COLUMNS + (("proba_m1", "proba_m2") if mode == "vanilla" else ())
    order = de["rank"]
    try:
        import pandas as pd
    except ImportError:
        out = np.empty(order.size, [("gene", genes.dtype)] + [(k, np.float64) for k in columns])
        out["gene"] = genes[order]
        for k in columns:
            out[k] = de[k][order]
        return out
    return pd.DataFrame({k: de[k][order] for k in columns}, index=pd.Index(genes[order]))


def _sparse_if_possible(counts: F32) -> Any:
    try:
        from scipy import sparse
    except ImportError:
        return counts
    return sparse.csr_matrix(counts)


def _stack(parts: list[Any]) -> Any:
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    from scipy import sparse

    return sparse.vstack(parts, format="csr")
