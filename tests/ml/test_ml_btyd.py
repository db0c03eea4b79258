"""BTYD models (ml.btyd): the fits recover the parameters of data simulated from each model, and
the closed forms agree with their definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml import btyd

# relative tolerance on each recovered parameter, 40,000 simulated persons (the sampling error
# of r, a and b at this size is a few percent; 15% leaves room without letting a wrong
# likelihood through: swapping the BG/NBD and MBG/NBD likelihoods misses by far more)
TOLERANCE = 0.15
PERSONS = 40_000


def _ages(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(30, 400, PERSONS).astype(float)


@pytest.mark.parametrize(
    ("model", "truth"),
    [("bg_nbd", (0.25, 4.0, 0.8, 2.5)), ("mbg_nbd", (0.5, 8.0, 0.6, 3.0))],
)
def test_the_fit_recovers_the_parameters_it_was_simulated_with(model, truth):
    data = btyd.simulate(model, truth, _ages(), seed=1)

    params = btyd.fit(model, data["x"], data["t_x"], data["T"])

    fitted = (params.r, params.alpha, params.a, params.b)
    assert fitted == pytest.approx(truth, rel=TOLERANCE)
    assert params.persons == PERSONS


def test_the_wrong_model_fits_worse():
    """MBG/NBD data (dropout possible before any purchase) is less likely under BG/NBD."""
    data = btyd.simulate("mbg_nbd", (0.5, 8.0, 0.6, 3.0), _ages(), seed=2)
    right = btyd.fit("mbg_nbd", data["x"], data["t_x"], data["T"])
    wrong = btyd.fit("bg_nbd", data["x"], data["t_x"], data["T"])
    assert right.log_likelihood > wrong.log_likelihood + 10


def test_predictions_match_what_happens_next_in_simulated_data():
    """Simulate 200 days, fit on the first 150: the predicted purchases of days 150-200 match
    the simulated ones on average, and P(no purchase) ranks who stays silent."""
    rng = np.random.default_rng(3)
    n, horizon = 20_000, 50.0
    r, alpha, a, b = 0.3, 5.0, 0.7, 2.5
    rate = rng.gamma(r, 1 / alpha, n)
    drop = rng.beta(a, b, n)
    xs, last, future = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):  # event by event: slow but obviously the model
        t, alive = 0.0, True
        while alive:
            t += rng.exponential(1 / rate[i])
            if t > 150 + horizon:
                break
            if t <= 150:
                xs[i], last[i] = xs[i] + 1, t
            else:
                future[i] += 1
            alive = rng.random() >= drop[i]
    T = np.full(n, 150.0)
    params = btyd.fit("bg_nbd", xs, last, T)

    expected = btyd.expected_purchases(params, horizon, xs, last, T)
    silent = btyd.probability_no_purchase(params, horizon, xs, last, T)

    assert expected.mean() == pytest.approx(future.mean(), rel=0.1)
    assert silent.mean() == pytest.approx((future == 0).mean(), abs=0.02)
    order = np.argsort(silent)
    assert (future[order[: n // 10]] == 0).mean() < (future[order[-n // 10 :]] == 0).mean()


def test_p_alive_is_one_without_repeat_purchases_and_falls_with_silence():
    params = btyd.BtydParams("bg_nbd", 0.3, 5.0, 0.7, 2.5)
    alive = btyd.probability_alive(params, [0, 3, 3], [0, 100, 10], [120, 120, 120])
    assert alive[0] == 1.0  # BG/NBD: nobody drops out before a purchase
    assert alive[1] > alive[2]  # the same 3 purchases, the last one long ago: less alive
    with pytest.raises(ValueError, match="t_x <= T"):
        btyd.probability_alive(params, [1], [10], [5])


def test_gamma_gamma_recovers_its_parameters_and_shrinks_towards_the_mean():
    x = np.random.default_rng(4).integers(1, 10, PERSONS)
    truth = (6.0, 4.0, 15.0)
    mean_value = btyd.simulate_gamma_gamma(truth, x, seed=5)

    params = btyd.fit_gamma_gamma(x, mean_value)

    assert (params.p, params.q, params.v) == pytest.approx(truth, rel=TOLERANCE)
    population = params.population_mean_value()
    one, many = btyd.expected_mean_value(params, [1, 20], [3 * population, 3 * population])
    assert population < one < many < 3 * population  # more orders, less shrinkage
    assert btyd.expected_mean_value(params, [0], [np.nan])[0] == pytest.approx(population)


def test_the_fit_uses_distinct_triples_with_weights():
    """Duplicated persons change nothing but the count (the fit runs on distinct triples)."""
    data = btyd.simulate("bg_nbd", (0.25, 4.0, 0.8, 2.5), _ages()[:5000].round(), seed=6)
    data["t_x"] = data["t_x"].round()
    once = btyd.fit("bg_nbd", data["x"], data["t_x"], data["T"])
    twice_data = pd.concat([data, data])
    twice = btyd.fit("bg_nbd", twice_data["x"], twice_data["t_x"], twice_data["T"])
    assert (twice.r, twice.alpha, twice.a, twice.b) == pytest.approx(
        (once.r, once.alpha, once.a, once.b), rel=1e-3
    )
    assert twice.persons == 2 * once.persons
