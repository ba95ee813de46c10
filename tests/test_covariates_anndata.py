"""The AnnData route's covariates as codes (vaefast/_anndata_setup.covariates):
the batch and categorical keys become integer codes (index of the category
in the model's stored list) and the continuous keys a float matrix; today's
one-hot conditions are built from those codes."""

import numpy as np
import pytest

from vaefast import _anndata_setup as setup_mod

ad = pytest.importorskip("anndata", reason="the AnnData route needs the anndata extra")
pd = pytest.importorskip("pandas", reason="anndata's obs is a pandas DataFrame")


def _adata(rng, n=50, order=("a", "b", "c")):
    obs = pd.DataFrame({
        "batch": pd.Categorical(rng.choice(["a", "b", "c"], n), categories=list(order)),
        "donor": rng.choice(["d2", "d1"], n),
        "age": rng.normal(0.0, 1.0, n),
        "dose": rng.uniform(0.0, 2.0, n),
    }, index=[f"cell{i}" for i in range(n)])
    return ad.AnnData(np.ones((n, 3), np.float32), obs=obs)


def test_codes_index_the_stored_categories(rng):
    adata = _adata(rng)
    s = setup_mod.make_setup(adata, batch_key="batch", categorical_covariate_keys="donor",
                             continuous_covariate_keys=["age", "dose"])
    codes, levels, cont = setup_mod.covariates(s, adata)
    assert codes.dtype == np.int32 and codes.shape == (50, 2) and levels == [3, 2]
    batch = adata.obs["batch"].astype(str).to_numpy()
    np.testing.assert_array_equal(codes[:, 0], [["a", "b", "c"].index(v) for v in batch])
    # non-categorical column: its sorted distinct values
    np.testing.assert_array_equal(codes[:, 1], (adata.obs["donor"] == "d2").to_numpy())
    np.testing.assert_array_equal(cont, adata.obs[["age", "dose"]].to_numpy(np.float32))
    # the codes form (from_anndata's): c is the continuous keys alone
    np.testing.assert_array_equal(setup_mod.conditions(s, adata), cont)
    assert setup_mod.n_conditions(s) == 2 and setup_mod.levels(s) == [3, 2]
    # the older one-hot form (saved models): those codes' indicator columns, then cont
    old = {k: v for k, v in s.items() if k != "codes"}
    c = setup_mod.conditions(old, adata)
    assert setup_mod.n_conditions(old) == 7 and setup_mod.levels(old) == []
    np.testing.assert_array_equal(c[:, :3], np.eye(3, dtype=np.float32)[codes[:, 0]])
    np.testing.assert_array_equal(c[:, 3:5], np.eye(2, dtype=np.float32)[codes[:, 1]])
    np.testing.assert_array_equal(c[:, 5:], cont)


def test_codes_follow_values_not_the_adatas_category_order(rng):
    first = _adata(np.random.default_rng(1))
    s = setup_mod.make_setup(first, batch_key="batch")
    other = _adata(np.random.default_rng(1), order=("c", "a", "b"))  # same cells
    np.testing.assert_array_equal(setup_mod.covariates(s, other)[0],
                                  setup_mod.covariates(s, first)[0])


def test_empty_parts_and_errors(rng):
    adata = _adata(rng)
    s = setup_mod.make_setup(adata, continuous_covariate_keys="age")
    codes, levels, cont = setup_mod.covariates(s, adata)
    assert codes is None and levels == [] and cont.shape == (50, 1)
    s = setup_mod.make_setup(adata, batch_key="batch")
    bad = adata.copy()
    bad.obs["batch"] = bad.obs["batch"].cat.add_categories(["z"])
    bad.obs.iloc[4, 0] = "z"
    with pytest.raises(ValueError, match=r"obs column 'batch' \(batch_key\) has category 'z'"):
        setup_mod.covariates(s, bad)
