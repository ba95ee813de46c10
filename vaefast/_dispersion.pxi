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


cdef int _set_dispersion(vf_vae *m, object mode, object column, int likelihood,
                         int64_t n_cat) except -1:
    """Give m's θ the mode `mode`, its table indexed by the codes' column
    `column` (gene-batch: 0 when None; gene-label: required). ValueError
    naming the argument for an unknown mode, a likelihood without a per-row
    θ, a table mode without categorical covariates or with the column out of
    range, or a column given to a mode without a table."""
    if not isinstance(mode, str) or mode not in DISPERSION_CODES:
        raise ValueError(f"dispersion must be one of {tuple(DISPERSION_CODES)}, got {mode!r}")
    table = mode in ("gene-batch", "gene-label")
    if column is not None and not table:
        raise ValueError(f"dispersion_covariate is only for 'gene-batch' and 'gene-label', "
                         f"not dispersion={mode!r}")
    if mode == "gene":
        return 0
    if likelihood not in _DISPERSION_LIKELIHOODS:
        raise ValueError(f"dispersion={mode!r} needs a likelihood with θ per row: one of "
                         f"{tuple(_DISPERSION_LIKELIHOODS.values())}")
    if table:
        if n_cat == 0:
            raise ValueError(f"dispersion={mode!r} needs categorical covariates "
                             f"(categorical=…): its θ table is indexed by a code column")
        if column is None and mode == "gene-label":
            raise ValueError("dispersion='gene-label' needs dispersion_covariate: the column "
                             "of the codes that holds the label")
        given = 0 if column is None else column
        try:  # any integer type (NumPy's too), never a bool or a float
            column = -1 if isinstance(given, bool) else _operator.index(given)
        except TypeError:
            column = -1
        if not 0 <= column < n_cat:
            raise ValueError(f"dispersion_covariate must be an int in [0, {n_cat}), "
                             f"got {given!r}")
    check_status(vf_vae_set_dispersion(m, DISPERSION_CODES[mode], column if table else -1),
                 "set_dispersion")
    return 0


cdef tuple _dispersion_info(const vf_vae *m):
    cdef int64_t info[4]
    check_status(vf_vae_dispersion_info(m, info), "dispersion_info")
    return (_DISPERSION_NAMES[info[0]], info[1], info[2], info[3])
