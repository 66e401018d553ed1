"""Customer-base models: who is still a customer, how much they will buy, and what it is worth.

Estimators in the scikit-learn style (``Model().fit(...)`` returns the model; learned parameters
in ``params_``; ``predict_*`` after fitting), fitted by maximum likelihood on sufficient
statistics:

* :class:`BetaGeo` — BG/NBD: repeat purchases and drop-out (P(alive), expected orders);
  :class:`ModifiedBetaGeo` — MBG/NBD, the same where customers may drop out after the first order;
* :class:`GammaGamma` — expected order value of each customer;
* :class:`ShiftedBetaGeo` — sBG: retention of a subscription cohort;
* `wilson_interval`, `newcombe_interval` — intervals of a rate and of the difference of two.

A fit on data that cannot identify the model, or whose optimum runs off to the edge of the
parameter space, raises :class:`ModelFitError` (with a ``reason``) instead of returning
parameters that make every prediction NaN; one that merely stopped early warns
(:class:`ConvergenceWarning`, ``converged_`` False).
"""

from kizuna.models._base import ConvergenceWarning, ModelFitError, ModelFitWarning, ModelNotFittedError, fit_note
from kizuna.models._beta_geo import BetaGeo, ModifiedBetaGeo
from kizuna.models._gamma_gamma import GammaGamma
from kizuna.models._proportions import newcombe_interval, wilson_interval
from kizuna.models._shifted_beta_geo import ShiftedBetaGeo

__all__ = [
    "BetaGeo",
    "ConvergenceWarning",
    "GammaGamma",
    "ModelFitError",
    "ModelFitWarning",
    "ModelNotFittedError",
    "ModifiedBetaGeo",
    "ShiftedBetaGeo",
    "fit_note",
    "newcombe_interval",
    "wilson_interval",
]
