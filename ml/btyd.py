"""Buy-till-you-die models: BG/NBD, MBG/NBD and the Gamma-Gamma spend model, closed form.

Why a small implementation of our own (checked on this machine, December 2026): ``lifetimes``
0.11.3 installs and its BG/NBD fit works with numpy 2.4 / pandas 3.1, but it is unmaintained
since 2020 and needs ``autograd`` and ``dill`` (two more unmaintained dependencies) for a
four-parameter likelihood; ``btyd`` is a 2022 beta; ``pymc-marketing`` brings PyMC and PyTensor
(a C compiler at import, minutes of sampling) for what is a closed-form maximum likelihood. The
likelihoods below are those of the papers, vectorised with numpy/scipy; the fit runs on the
distinct (x, t_x, T) triples with their counts as weights, so a million persons with day-level
recency cost no more than the number of distinct triples. ``tests/ml/test_ml_btyd.py`` checks
that the fits recover the parameters of data simulated from each model; the BG/NBD fit also
agrees with ``lifetimes`` on the same simulated data (to three digits, one-off check recorded in
the issue-23 note).

Notation (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): per person,
``x`` purchases after birth, ``t_x`` the time of the last one since birth (0 when x = 0),
``T`` the time from birth to the cutoff. Purchase rate lambda ~ Gamma(r, alpha); BG/NBD: after
each purchase the person drops out with probability p ~ Beta(a, b); MBG/NBD (Batislam, Denizel
& Filiztekin 2007): the person may also drop out at birth, before any purchase.

Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV"): a person's transaction values are
Gamma(p, nu), nu ~ Gamma(q, v); fitted on persons with at least one transaction, on their
mean transaction value; independent of the purchase process by assumption.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import gammaln, hyp2f1

log = logging.getLogger(__name__)

BtydModel = Literal["bg_nbd", "mbg_nbd"]


@dataclass(frozen=True)
class BtydParams:
    """Fitted BG/NBD or MBG/NBD parameters (time unit: days)."""

    model: BtydModel
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")
    persons: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BtydParams:
        return cls(**data)


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    v: float
    log_likelihood: float = float("nan")
    persons: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GammaGammaParams:
        return cls(**data)

    def population_mean_value(self) -> float:
        """E[transaction value] of a person with no transactions yet: p v / (q - 1)."""
        return self.p * self.v / (self.q - 1.0) if self.q > 1.0 else float("nan")


def _arrays(x: Any, t_x: Any, T: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    t_x = np.where(x > 0, np.asarray(t_x, dtype=np.float64), 0.0)
    T = np.asarray(T, dtype=np.float64)
    if (x < 0).any() or (T < 0).any() or (t_x > T + 1e-9).any():
        raise ValueError("need x >= 0, T >= 0 and t_x <= T")
    return x, t_x, T


def log_likelihood(
    model: BtydModel, params: tuple[float, float, float, float], x, t_x, T
) -> np.ndarray:
    """Per-person log-likelihood of (x, t_x, T) under ``model`` with (r, alpha, a, b)."""
    r, alpha, a, b = params
    x, t_x, T = _arrays(x, t_x, T)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a3 = -(r + x) * np.log(alpha + T)
    if model == "bg_nbd":
        a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
        with np.errstate(divide="ignore", invalid="ignore"):
            a4 = np.where(
                x > 0,
                np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
                -np.inf,
            )
    else:
        a2 = gammaln(a + b) + gammaln(b + x + 1) - gammaln(b) - gammaln(a + b + x + 1)
        a4 = np.log(a) - np.log(b + x) - (r + x) * np.log(alpha + t_x)
    return a1 + a2 + np.logaddexp(a3, a4)


def _distinct(x, t_x, T) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    frame = pd.DataFrame({"x": x, "t_x": t_x, "T": T})
    grouped = frame.groupby(["x", "t_x", "T"], sort=False).size().reset_index(name="n")
    return (
        grouped["x"].to_numpy(float),
        grouped["t_x"].to_numpy(float),
        grouped["T"].to_numpy(float),
        grouped["n"].to_numpy(float),
    )


def fit(model: BtydModel, x, t_x, T, *, penalty: float = 0.0) -> BtydParams:
    """Maximum-likelihood (r, alpha, a, b) of ``model`` (L-BFGS-B on log-parameters, on the
    distinct triples weighted by their counts). ``penalty`` adds an L2 term on the
    log-parameters (lifetimes' ``penalizer_coef``); 0 by default."""
    x, t_x, T = _arrays(x, t_x, T)
    if not len(x):
        raise ValueError("no persons to fit")
    ux, ut, uT, n = _distinct(x, t_x, T)
    total = n.sum()
    scale = max(float(np.mean(T)), 1.0)

    def objective(theta: np.ndarray) -> float:
        r, alpha, a, b = np.exp(theta)
        ll = log_likelihood(model, (r, alpha * scale, a, b), ux, ut, uT)
        value = -(n * ll).sum() / total + penalty * float(np.sum(theta**2))
        return float(value) if np.isfinite(value) else 1e12

    best = None
    for start in (np.log([1.0, 1.0, 1.0, 1.0]), np.log([0.5, 0.2, 0.5, 3.0])):
        result = minimize(objective, start, method="L-BFGS-B", bounds=[(-12.0, 12.0)] * 4)
        if best is None or result.fun < best.fun:
            best = result
        if result.success:  # the second start only when the first did not converge
            break
    r, alpha, a, b = np.exp(best.x)
    params = BtydParams(
        model,
        float(r),
        float(alpha * scale),
        float(a),
        float(b),
        float(-best.fun * total),
        int(total),
    )
    log.info("%s fit on %d persons: %s", model, int(total), params)
    return params


def probability_alive(params: BtydParams, x, t_x, T) -> np.ndarray:
    """P(the person has not dropped out by T | x, t_x, T)."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_ratio = (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    if params.model == "bg_nbd":
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            odds = np.where(x > 0, a / np.maximum(b + x - 1, 1e-300) * np.exp(log_ratio), 0.0)
    else:
        with np.errstate(over="ignore"):
            odds = a / (b + x) * np.exp(log_ratio)
    return 1.0 / (1.0 + odds)


def probability_no_purchase(params: BtydParams, horizon: float, x, t_x, T) -> np.ndarray:
    """P(no purchase in (T, T + horizon] | x, t_x, T): dropped out, or alive and silent.
    The BTYD models' churn score for a horizon."""
    x, t_x, T = _arrays(x, t_x, T)
    alive = probability_alive(params, x, t_x, T)
    silent = np.exp(
        (params.r + x) * (np.log(params.alpha + T) - np.log(params.alpha + T + horizon))
    )
    return 1.0 - alive + alive * silent


def expected_purchases(params: BtydParams, horizon: float, x, t_x, T) -> np.ndarray:
    """E[purchases in (T, T + horizon] | x, t_x, T] (BG/NBD eq. 10; MBG/NBD analogue)."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if abs(a - 1.0) < 1e-6:  # removable singularity of the closed form
        a = 1.0 + 1e-6
    z = horizon / (alpha + T + horizon)
    silent = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + horizon)))
    shift = 1.0 if params.model == "mbg_nbd" else 0.0
    hyp = hyp2f1(r + x, b + x + shift, a + b + x - 1 + shift, z)
    alive_given_all = (a + b + x - 1 + shift) / (a - 1) * (1.0 - silent * hyp)
    value = alive_given_all * probability_alive(params, x, t_x, T)
    return np.clip(np.nan_to_num(value, nan=0.0, posinf=0.0), 0.0, None)


def simulate(
    model: BtydModel,
    params: tuple[float, float, float, float],
    T: Any,
    seed: int = 0,
) -> pd.DataFrame:
    """(x, t_x, T) of persons drawn from ``model`` with (r, alpha, a, b), observed for ``T``.

    Vectorised: the purchases a person would make before dropping out are geometric (BG/NBD:
    on 1, 2, ...; MBG/NBD: on 0, 1, ...), the arrivals in (0, T] Poisson(lambda T); x is the
    smaller, and the time of the x-th of K uniform arrivals is T * Beta(x, K - x + 1).
    """
    rng = np.random.default_rng(seed)
    r, alpha, a, b = params
    T = np.asarray(T, dtype=np.float64)
    size = T.shape[0]
    rate = rng.gamma(r, 1.0 / alpha, size)
    drop = rng.beta(a, b, size)
    before_dropout = rng.geometric(drop) - (1 if model == "mbg_nbd" else 0)
    arrivals = rng.poisson(rate * T)
    x = np.minimum(before_dropout, arrivals)
    t_x = np.zeros(size)
    some = x > 0
    t_x[some] = T[some] * rng.beta(x[some], arrivals[some] - x[some] + 1)
    return pd.DataFrame({"x": x.astype(np.int64), "t_x": t_x, "T": T})


def gamma_gamma_log_likelihood(params: tuple[float, float, float], x, mean_value) -> np.ndarray:
    """Per-person log-likelihood of the mean transaction value of x >= 1 transactions."""
    p, q, v = params
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(mean_value, dtype=np.float64)
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(x * m + v)
    )


def fit_gamma_gamma(x, mean_value) -> GammaGammaParams:
    """Maximum-likelihood (p, q, v) on persons with x >= 1 and a positive mean value."""
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(mean_value, dtype=np.float64)
    keep = (x >= 1) & np.isfinite(m) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) < 10:
        raise ValueError(f"{len(x)} persons with a transaction: too few for Gamma-Gamma")
    scale = float(np.mean(m))

    def objective(theta: np.ndarray) -> float:
        p, q, v = np.exp(theta)
        ll = gamma_gamma_log_likelihood((p, q, v), x, m / scale)
        value = -float(np.mean(ll))
        return value if np.isfinite(value) else 1e12

    result = minimize(
        objective, np.log([1.0, 2.0, 1.0]), method="L-BFGS-B", bounds=[(-10.0, 10.0)] * 3
    )
    p, q, v = np.exp(result.x)
    # value scale: m' = m / scale means v' = v / scale; undo it
    ll = float(gamma_gamma_log_likelihood((p, q, v * scale), x, m).sum())
    return GammaGammaParams(float(p), float(q), float(v * scale), ll, len(x))


def expected_mean_value(params: GammaGammaParams, x, mean_value) -> np.ndarray:
    """E[transaction value | x, mean value]; the population mean for x = 0 (or no value)."""
    x = np.asarray(x, dtype=np.float64)
    m = np.nan_to_num(np.asarray(mean_value, dtype=np.float64), nan=0.0)
    conditional = params.p * (params.v + x * m) / (params.p * x + params.q - 1.0)
    return np.where(x >= 1, conditional, params.population_mean_value())


def simulate_gamma_gamma(params: tuple[float, float, float], x: Any, seed: int = 0) -> np.ndarray:
    """Mean transaction value of x transactions per person drawn from Gamma-Gamma(p, q, v)."""
    rng = np.random.default_rng(seed)
    p, q, v = params
    x = np.asarray(x, dtype=np.float64)
    nu = rng.gamma(q, 1.0 / v, len(x))
    return rng.gamma(p * x, 1.0 / nu) / x
