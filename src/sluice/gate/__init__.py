"""The CI gate: a candidate model against a baseline on a fixed validation set."""

CLASSIFICATION = ("accuracy", "f1_macro", "log_loss", "auc")
REGRESSION = ("mae", "rmse", "r2")
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})
