"""What training needs besides the network and the loss: the non-finite guard (:mod:`.guard`), the
optimiser, schedule and parameter groups (:mod:`.optim`), and the evaluation protocol in force per
stage (:mod:`.protocol`). :class:`depthlab.module.DepthModule` calls into them."""

from depthlab.training.guard import NonFiniteGuard, NonFiniteStepWarning, NonFiniteTrainingError, nonfinite
from depthlab.training.optim import warmup_cosine

__all__ = ["NonFiniteGuard", "NonFiniteStepWarning", "NonFiniteTrainingError", "nonfinite", "warmup_cosine"]
