# Binding of the NB/ZINB dispersion modes (csrc/vae_dispersion.c): what
# VAECore(dispersion=…, dispersion_covariate=…) does after creating the model.
# The mode names are vaefast/_spec/dispersion.py's (tests/test_dispersion_core.py
# compares the two).

import operator as _operator

DISPERSION_CODES = {"gene": VF_DISPERSION_GENE, "gene-batch": VF_DISPERSION_GENE_BATCH,
                    "gene-label": VF_DISPERSION_GENE_LABEL,
                    "gene-cell": VF_DISPERSION_GENE_CELL}
_DISPERSION_NAMES = {code: name for name, code in DISPERSION_CODES.items()}
# the likelihoods whose θ may depend on more than the gene (the scVI mean)
_DISPERSION_LIKELIHOODS = {VF_LIKELIHOOD_ZINB: "zinb", VF_LIKELIHOOD_SCVI_NB: "scvi_nb"}


def _as_index(value, name):
    """value as an int (any integer type, NumPy's too), never a bool or a
    float; ValueError naming `name` otherwise."""
    try:
        if not isinstance(value, bool):
            return _operator.index(value)
    except TypeError:
        pass
    raise ValueError(f"{name} must be an int, got {value!r}")


cdef int _set_dispersion(vf_vae *m, object mode, object column, object levels,
                         int likelihood, int64_t n_cat) except -1:
    """Give m's θ the mode `mode`. A table mode reads the codes' column
    `column`: a categorical covariate k < n_cat (gene-batch: 0 when None),
    or n_cat, a side column of `levels` values the layers never see (scVI's
    label: the default when only `levels` is given). ValueError naming the
    argument for an unknown mode, a likelihood without a per-row θ, a table
    mode with no column to read, a column out of range, levels that do not
    fit it, or a column or levels given to a mode without a table."""
    if not isinstance(mode, str) or mode not in DISPERSION_CODES:
        raise ValueError(f"dispersion must be one of {tuple(DISPERSION_CODES)}, got {mode!r}")
    table = mode in ("gene-batch", "gene-label")
    for name, value in (("dispersion_covariate", column), ("dispersion_levels", levels)):
        if value is not None and not table:
            raise ValueError(f"{name} is only for 'gene-batch' and 'gene-label', "
                             f"not dispersion={mode!r}")
    if mode == "gene":
        return 0
    if likelihood not in _DISPERSION_LIKELIHOODS:
        raise ValueError(f"dispersion={mode!r} needs a likelihood with θ per row: one of "
                         f"{tuple(_DISPERSION_LIKELIHOODS.values())}")
    cdef int64_t col = -1, n_levels = 0
    if table:
        if column is None and levels is None:
            if n_cat == 0 or mode == "gene-label":
                raise ValueError(f"dispersion={mode!r} needs dispersion_covariate (a "
                                 f"categorical covariate's column) or dispersion_levels "
                                 f"(a side column of the codes after the {n_cat} covariates)")
        col = (n_cat if levels is not None else 0) if column is None else \
            _as_index(column, "dispersion_covariate")
        if not 0 <= col <= n_cat:
            raise ValueError(f"dispersion_covariate must be in [0, {n_cat}], got {col}")
        n_levels = 0 if levels is None else _as_index(levels, "dispersion_levels")
        if col == n_cat and n_levels < 1:
            raise ValueError(f"dispersion_levels must be >= 1 for the side column {n_cat}, "
                             f"got {levels!r}")
    check_status(vf_vae_set_dispersion(m, DISPERSION_CODES[mode], col, n_levels),
                 "set_dispersion")
    return 0


cdef tuple _dispersion_info(const vf_vae *m):
    cdef int64_t info[4]
    check_status(vf_vae_dispersion_info(m, info), "dispersion_info")
    return (_DISPERSION_NAMES[info[0]], info[1], info[2], info[3])
