"""Import path kept for ``lsmseg.bundle``, ``lsmseg.bench`` and ``lsmseg.sweep``: see :mod:`lsmseg.methods.terms`."""

from lsmseg.methods.terms import (
    ADVERSARIAL_LOSSES,
    METHODS,
    Lambdas,
    Stage,
    Switches,
    Term,
    check_adversarial,
    lsm_terms,
    method_stages,
)

__all__ = [
    "ADVERSARIAL_LOSSES",
    "METHODS",
    "Lambdas",
    "Stage",
    "Switches",
    "Term",
    "check_adversarial",
    "lsm_terms",
    "method_stages",
]
