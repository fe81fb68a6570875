"""``suanli plan train | serve | buy``: decisions, not single estimates. Each sub-command lives in its own module
(``cli/plan_train.py``, ``cli/plan_serve.py``, ``cli/plan_buy.py``) and registers itself here."""

from __future__ import annotations

from suanli.cli import plan_buy, plan_serve, plan_train
from suanli.cli.common import Commands


def register(commands: Commands) -> None:
    plan = commands.add_parser(
        "plan", help="search: the best training layout, serving deployment, or what to buy or rent",
        description="Decisions over a declared search space, evaluated with the same model as train / infer / "
        "simulate: `plan train` (parallel layout), `plan serve` (GPUs, TP/EP, replicas, PD ratio under an SLO), "
        "`plan buy` (buy versus rent).")
    sub = plan.add_subparsers(dest="plan_command", metavar="PLAN", parser_class=type(plan))
    for module in (plan_train, plan_serve, plan_buy):
        module.register(sub)
    plan.set_defaults(run=_missing)


def _missing(_: object) -> int:
    from suanli.errors import SpecError

    raise SpecError("name what to plan: `suanli plan train MODEL …`, `plan serve MODEL …` or `plan buy …`",
                    key="error.plan.what")
