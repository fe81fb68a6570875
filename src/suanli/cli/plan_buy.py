"""``suanli plan buy --budget-usd B (--train MODEL | --serve MODEL)``: buy versus rent. For every accelerator the
catalog prices (to buy or to rent) on which the job fits: the GPUs it needs, the up-front price, the running costs
per year, the total over ``--years``, the months after which buying has cost less than renting, and the job on
those GPUs (a training run's time, or whether they serve ``--rate``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from suanli.cli.common import Commands, accelerator_list, fraction, positive_float, positive_int
from suanli.cli.model_arg import add_as_option
from suanli.cli.train_commands import FRAMEWORKS, METHODS, OPTIMIZERS, PRECISIONS, add_lora_options
from suanli.units import SECONDS_PER_DAY

if TYPE_CHECKING:
    from suanli.search.buy import BuyOption, BuyRequest
    from suanli.spec.hardware import Accelerator
    from suanli.spec.model import ModelSpec
    from suanli.spec.purchase import Purchase

ENGINES = ("vllm", "sglang", "trtllm", "tgi", "llamacpp", "hf")
DEFAULT_YEARS = 3.0


def register(sub: Commands) -> None:
    buy = sub.add_parser(
        "buy", help="buy versus rent for a budget: total cost of ownership and break-even, where the job fits",
        description="For every accelerator with a catalogued purchase or rental price on which the job fits: buy "
        "the GPUs the job needs (whole servers where that is how they are sold) or rent them. Ownership = price "
        "(+ host share and cluster network) + energy × PUE × electricity price (+ colocation, maintenance) over "
        "--years; renting = the catalog's cheapest on-demand price per GPU-hour. Busy hours = the year × "
        "--utilization for both.")
    what = buy.add_mutually_exclusive_group(required=True)
    what.add_argument("--train", metavar="MODEL", help="size a training job of this model")
    what.add_argument("--serve", metavar="MODEL", help="size a serving deployment of this model")
    add_as_option(buy)
    buy.add_argument("--budget-usd", type=positive_float, required=True, help="money available up front, USD")
    buy.add_argument("--years", type=positive_float, default=DEFAULT_YEARS,
                     help=f"how long the hardware is used (default {DEFAULT_YEARS:g})")
    buy.add_argument("--utilization", type=fraction, default=1.0,
                     help="share of the year the GPUs are busy, for buying and renting alike (default 1.0)")
    buy.add_argument("--gpu", help="only these accelerators, comma-separated (default: every priced one)")
    buy.add_argument("--purchase-usd", metavar="GPU=USD[,GPU=USD]",
                     help="your own price per GPU, its share of the server included (e.g. h100=40000); replaces "
                     "the catalog's price of that part")
    money = buy.add_argument_group("running costs of bought hardware")
    money.add_argument("--usd-per-kwh", type=positive_float, help="electricity price (default 0.0806, the US "
                       "average industrial price in 2023, EIA)")
    money.add_argument("--pue", type=positive_float, help="site power usage effectiveness (default 1.58, the "
                       "industry average; 1.0 for a desk-side machine)")
    money.add_argument("--power-w", type=positive_float, help="average power per GPU including its host share, W")
    money.add_argument("--colocation-usd-per-kw-month", type=positive_float, metavar="USD",
                       help="colocation rent per kW of IT load (CBRE H2 2024 average: 184.06; default none)")
    money.add_argument("--maintenance-fraction", type=float, metavar="F", default=0.0,
                       help="support contracts per year as a fraction of the hardware price (default 0)")
    train = buy.add_argument_group("the training job (as in `suanli train`)")
    train.add_argument("--tokens", type=positive_float, help="training tokens of the run: adds its time")
    train.add_argument("--seq", type=positive_int, help="sequence length (default 2048, or the model's context)")
    train.add_argument("--micro-batch", type=positive_int, default=1, help="sequences per GPU per step (default 1)")
    train.add_argument("--global-batch", type=positive_int, help="sequences per optimizer step")
    train.add_argument("--method", choices=METHODS, default="full")
    train.add_argument("--precision", choices=PRECISIONS, help="default bf16")
    train.add_argument("--framework", choices=FRAMEWORKS, default="deepspeed")
    train.add_argument("--optimizer", choices=OPTIMIZERS, help="default adamw (paged-adamw-8bit for qlora)")
    train.add_argument("--attention", choices=("flash", "sdpa", "eager"), default="flash")
    add_lora_options(train)
    serve = buy.add_argument_group("the serving job (as in `suanli infer`)")
    serve.add_argument("--rate", type=positive_float, help="requests per second to serve")
    serve.add_argument("--prompt", type=positive_int, default=1024, help="prompt tokens (default 1024)")
    serve.add_argument("--output", type=positive_int, default=256, help="generated tokens (default 256)")
    serve.add_argument("--quant", help="weight format (default: the checkpoint's)")
    serve.add_argument("--kv-dtype", help="KV-cache format (default: the engine's)")
    serve.add_argument("--engine", choices=ENGINES, default="vllm")
    buy.add_argument("--json", action="store_true", help="print one JSON object (stable keys) instead of a table")
    buy.set_defaults(run=run_plan_buy)


def run_plan_buy(args: argparse.Namespace) -> int:
    from suanli.cli.render import emit_json
    from suanli.search.buy import plan_buy

    request, spec = build_request(args)
    options = plan_buy(request)
    _raise_when_nothing(options, request, spec)
    payload = _payload(args, spec, request, options)
    if args.json:
        emit_json(payload)
        return 0
    print(_text(payload))
    return 0


def build_request(args: argparse.Namespace) -> tuple[BuyRequest, ModelSpec]:
    from dataclasses import replace

    from suanli.search.buy import BuyRequest
    from suanli.spec.assumptions import CostAssumptions, OwnershipAssumptions
    from suanli.spec.resolve import load_model

    spec = load_model(args.train or args.serve, as_family=args.as_family)
    ownership = OwnershipAssumptions(colocation_usd_per_kw_month=args.colocation_usd_per_kw_month,
                                     maintenance_fraction_per_year=args.maintenance_fraction)
    overrides = {k: v for k, v in (("usd_per_kwh", args.usd_per_kwh), ("pue", args.pue)) if v is not None}
    accelerators = None
    if args.gpu:
        accelerators = accelerator_list(args.gpu)
        _check_priced(accelerators, tuple(_user_prices(args.purchase_usd)))
    job = _training_model(args, spec) if args.train else _serving_model(args, spec)
    return BuyRequest(job=job, budget_usd=args.budget_usd, years=args.years, utilization=args.utilization,
                      accelerators=accelerators, purchases=_user_prices(args.purchase_usd),
                      power_per_gpu_w=args.power_w, cost=CostAssumptions(),
                      ownership=replace(ownership, **overrides)), spec


def _user_prices(text: str | None) -> dict[str, Purchase]:
    """``h100=40000,4090=1800`` → the user's prices per GPU, host share included, dated today."""
    import datetime

    from suanli.errors import SpecError
    from suanli.spec.hardware import get_accelerator
    from suanli.spec.purchase import Purchase

    prices = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, _, usd = item.partition("=")
        try:
            value = float(usd)
        except ValueError:
            value = float("nan")
        if not value > 0 or value == float("inf"):
            raise SpecError(f"--purchase-usd wants GPU=USD pairs with a positive price, e.g. h100=40000; got '{item}'",
                            key="error.plan.purchase_usd", fields={"item": item})
        key = get_accelerator(name).key
        prices[key] = Purchase(accelerator=key, unit="node", gpus_per_unit=1, usd=value, kind="user",
                               description="your price per GPU (--purchase-usd), server share included",
                               date=datetime.date.today().isoformat(), source="--purchase-usd",
                               confidence="high")
    return prices


def _check_priced(accelerators: tuple[Accelerator, ...], user: tuple[str, ...]) -> None:
    """--gpu naming only parts the catalog prices neither to buy nor to rent: say which ones it does price."""
    from suanli.errors import NotFound
    from suanli.search.buy import on_demand_price, priced_accelerators
    from suanli.spec.purchase import preferred_purchase

    if not any(preferred_purchase(a.key) or on_demand_price(a) or a.key in user for a in accelerators):
        names = ", ".join(a.key for a in accelerators)
        priced = ", ".join(a.key for a in priced_accelerators())
        raise NotFound(f"the catalog has no purchase or on-demand rental price for {names}; priced: {priced}",
                       key="error.plan.buy_unpriced", fields={"names": names, "priced": priced})


def _training_model(args: argparse.Namespace, spec: ModelSpec) -> Any:
    from dataclasses import replace

    from suanli.cli.train_commands import parse_job
    from suanli.errors import SpecError
    from suanli.search.buy import training_job
    from suanli.search.fit import training_evaluator
    from suanli.spec.support import max_context_tokens, training_format_violation

    if args.rate is not None or args.quant or args.kv_dtype:
        raise SpecError("--rate, --quant and --kv-dtype size a serving job: use them with --serve MODEL",
                        key="error.plan.buy_serving_options")
    args.precision = args.precision or "bf16"
    args.seq = args.seq or min(2048, max_context_tokens(spec))
    job = parse_job(args)
    base = training_evaluator(spec, job.method, seq=job.seq, micro_batch=args.micro_batch, job=job)

    def refusal(accelerator: Accelerator) -> str | None:  # the method, then the precision (fp8 before Hopper)
        violation = training_format_violation(job.precision, accelerator)
        return base.refusal(accelerator) or (violation.message if violation else None)

    return training_job(spec, job, replace(base, refusal=refusal), micro_batch=args.micro_batch, tokens=args.tokens,
                        global_batch=args.global_batch)


def _serving_model(args: argparse.Namespace, spec: ModelSpec) -> Any:
    from suanli.errors import SpecError
    from suanli.search.buy import serving_job
    from suanli.search.fit import inference_evaluator
    from suanli.spec.engines import get_engine
    from suanli.spec.precision import parse_number_format

    if args.tokens is not None or args.global_batch is not None:
        raise SpecError("--tokens and --global-batch size a training job: use them with --train MODEL",
                        key="error.plan.buy_training_options")
    fitter = inference_evaluator(spec, engine=args.engine, quant=args.quant, kv_dtype=args.kv_dtype,
                                 context=args.prompt + args.output, batch=1)
    return serving_job(spec, fitter, engine=get_engine(args.engine),
                       weights_format=parse_number_format(args.quant) if args.quant else None,
                       kv_format=parse_number_format(args.kv_dtype) if args.kv_dtype else None,
                       prompt_tokens=args.prompt, output_tokens=args.output, rate=args.rate)


def _raise_when_nothing(options: list[BuyOption], request: BuyRequest, spec: ModelSpec) -> None:
    """No priced accelerator holds the job, or the budget buys none that does: one line naming the closest."""
    from suanli.errors import LayoutError, SpecError
    from suanli.i18n import Text

    if not options:
        raise LayoutError(f"{spec.name} fits on no accelerator with a catalogued purchase or rental price (up to "
                          "1024 GPUs); lower --seq / --prompt, use --method lora/qlora or --quant, or drop --gpu",
                          key="error.plan.buy_nothing_fits", fields={"model": spec.name})
    buys = [o for o in options if o.option == "buy"]
    if buys and not any(o.within_budget for o in buys):
        cheapest = min(buys, key=lambda o: o.capex_usd)
        rent = min((o for o in options if o.option == "rent"), key=lambda o: o.total_usd, default=None)
        rather = "" if rent is None else Text("fix.plan.or_rent", gpus=rent.gpus, gpu=rent.accelerator.key,
                                              usd=rent.usd_per_year)
        raise SpecError(f"a budget of ${request.budget_usd:,.0f} buys nothing that fits {spec.name}: the cheapest is "
                        f"{cheapest.gpus}× {cheapest.accelerator.key} at ${cheapest.capex_usd:,.0f}; raise "
                        f"--budget-usd to at least {cheapest.capex_usd:.0f}{rather}",
                        key="error.plan.buy_over_budget",
                        fields={"budget": request.budget_usd, "model": spec.name, "gpus": cheapest.gpus,
                                "gpu": cheapest.accelerator.key, "capex": cheapest.capex_usd, "rather": rather})


def _payload(args: argparse.Namespace, spec: ModelSpec, request: BuyRequest,
             options: list[BuyOption]) -> dict[str, Any]:
    rows = [_row(o, request) for o in options]
    best = next((r for r in rows if r["within_budget"]), None)
    o = request.ownership
    return {"command": "plan buy", "model": spec.name, "job": "train" if args.train else "serve",
            "budget_usd": request.budget_usd, "years": request.years, "utilization": request.utilization,
            "assumptions": {"usd_per_kwh": o.usd_per_kwh, "pue": o.pue,
                            "server_cost_multiplier": o.server_cost_multiplier,
                            "cluster_interconnect_multiplier": o.cluster_interconnect_multiplier,
                            "colocation_usd_per_kw_month": o.colocation_usd_per_kw_month,
                            "maintenance_fraction_per_year": o.maintenance_fraction_per_year,
                            "power_fraction_of_tdp": request.cost.power_fraction_of_tdp,
                            "host_overhead_fraction": request.cost.host_overhead_fraction},
            "rate": getattr(args, "rate", None), "tokens": getattr(args, "tokens", None),
            "best": best, "verdict": _verdict(best, request), "per_run": _per_run(rows), "rows": rows}


def _row(o: BuyOption, request: BuyRequest) -> dict[str, Any]:
    job = o.job
    p, r = o.purchase, o.rent_price
    return {
        "option": o.option, "gpu": o.accelerator.key, "count": o.gpus, "min_gpus": o.min_gpus,
        "needed_gpus": o.needed_gpus, "fits": True, "within_budget": o.within_budget,
        "capex_usd": o.capex_usd, "usd_per_year": o.usd_per_year, "total_usd": o.total_usd,
        "break_even_months": o.break_even_months, "rent_usd_per_year": o.rent_usd_per_year,
        "max_gpus_within_budget": o.max_gpus_within_budget, "runs": o.runs, "usd_per_run": o.usd_per_run,
        "capex": None if o.capex is None else {"units": o.capex.units, "hardware_usd": o.capex.hardware_usd,
                                               "host_usd": o.capex.host_usd, "network_usd": o.capex.network_usd},
        "opex": None if o.opex is None else {
            "power_per_gpu_w": o.opex.power_per_gpu_w, "busy_hours_per_year": o.opex.busy_hours_per_year,
            "energy_kwh_per_year": o.opex.energy_kwh, "energy_usd_per_year": o.opex.energy_usd,
            "colocation_usd_per_year": o.opex.colocation_usd, "maintenance_usd_per_year": o.opex.maintenance_usd},
        "purchase": None if p is None else {"usd": p.usd, "unit": p.unit, "gpus_per_unit": p.gpus_per_unit,
                                            "kind": p.kind, "description": p.description, "date": p.date,
                                            "source": p.source, "confidence": p.confidence},
        "rent": None if r is None else {"usd_per_gpu_hour": r.usd_per_hour, "provider": r.provider,
                                        "date": r.date, "source": r.source},
        "months_on_budget": (12 * request.budget_usd / o.usd_per_year
                             if o.option == "rent" and o.usd_per_year > 0 else None),
        "job": None if job is None else {"layout": job.layout, "job_s": job.job_s, "tokens_per_s": job.tokens_per_s,
                                         "replicas": job.replicas, "requests_per_s": job.requests_per_s,
                                         "serves_rate": job.serves_rate},
    }


def _verdict(best: dict[str, Any] | None, request: BuyRequest) -> str:
    """The verdict: a ``Text``, so ``--json`` keeps the English and the table says it in the reader's language."""
    from suanli.i18n import Text

    if best is None:
        return Text("value.buy.none_in_budget")
    years = Text("value.buy.years" if request.years != 1 else "value.buy.year", years=request.years)
    if best["option"] == "rent":
        return Text("value.buy.rent", years=years, utilization=request.utilization, count=best["count"],
                    gpu=best["gpu"], total=best["total_usd"], rate=best["rent"]["usd_per_gpu_hour"])
    months = best["break_even_months"]
    payback = (Text("value.buy.no_rent_price") if best["rent"] is None else
               Text("value.buy.never_pays_back") if months is None else Text("value.buy.pays_back", months=months))
    return Text("value.buy.buy", years=years, utilization=request.utilization, count=best["count"], gpu=best["gpu"],
                capex=best["capex_usd"], per_year=best["usd_per_year"], total=best["total_usd"], payback=payback)


def _per_run(rows: list[dict[str, Any]]) -> str | None:
    """The option whose training run costs least when the GPUs run that job back to back (with --tokens)."""
    priced = [r for r in rows if r["within_budget"] and r["usd_per_run"] is not None]
    if not priced:
        return None
    from suanli.i18n import Text

    r = min(priced, key=lambda row: row["usd_per_run"])
    return Text("value.buy.per_run", option=Text(f"label.{r['option']}"), count=r["count"], gpu=r["gpu"],
                usd=r["usd_per_run"], days=r["job"]["job_s"] / SECONDS_PER_DAY, runs=r["runs"])


def _text(payload: dict[str, Any]) -> str:
    from suanli.cli.render import table
    from suanli.i18n import say, t

    rows = [[r["option"], r["gpu"], r["count"], f"${r['capex_usd']:,.0f}", f"${r['usd_per_year']:,.0f}",
             f"${r['total_usd']:,.0f}", _months(r), t("value.yes" if r["within_budget"] else "value.no"),
             _job_text(r)]
            for r in payload["rows"]]
    header = t("value.buy.header", model=payload["model"], job=payload["job"], budget=payload["budget_usd"],
               years=payload["years"], utilization=payload["utilization"],
               usd_per_kwh=payload["assumptions"]["usd_per_kwh"], pue=payload["assumptions"]["pue"])
    body = table(["option", "gpu", "GPUs", "up front", "per year", t("value.buy.total", years=payload["years"]),
                  "break-even", "in budget", "job"], rows, align="llrrrrrll")
    prices = sorted({_price_text(r["gpu"], r["purchase"]) for r in payload["rows"] if r["purchase"]})
    verdict = t("value.buy.verdict", verdict=say(payload["verdict"]))
    if payload["per_run"]:
        verdict += "\n" + " " * _verdict_indent() + say(payload["per_run"])
    return "\n\n".join([header, body, verdict, t("value.buy.prices") + "\n  " + "\n  ".join(prices)])


def _verdict_indent() -> int:
    """Columns of the "verdict: " lead, so the per-run line sits under the verdict's text."""
    from suanli.i18n import display_width, t

    return display_width(t("value.buy.verdict", verdict=""))


def _price_text(gpu: str, p: dict[str, Any]) -> str:
    from suanli.i18n import t

    return t("value.buy.price_line", gpu=gpu, description=p["description"], usd=p["usd"],
             kind=t(f"term.purchase_kind.{p['kind']}"), date=p["date"],
             confidence=t(f"term.confidence.{p['confidence']}"))


def _months(row: dict[str, Any]) -> str:
    from suanli.i18n import t

    if row["option"] == "rent":
        return "—"
    if row["rent"] is None:
        return t("value.buy.no_rent")
    return t("value.buy.never") if row["break_even_months"] is None else \
        t("value.buy.months", months=row["break_even_months"])


def _job_text(row: dict[str, Any]) -> str:
    from suanli.i18n import t

    job = row["job"]
    if job is None:
        return ""
    if job["job_s"] is not None:
        return t("value.days", n=job["job_s"] / SECONDS_PER_DAY)
    if job["serves_rate"] is not None:
        return t("value.buy.serves" if job["serves_rate"] else "value.buy.short_of", rate=job["requests_per_s"])
    if job["requests_per_s"] is not None:
        return f"{job['requests_per_s']:.3g} req/s"
    if job["tokens_per_s"] is not None:
        return f"{job['tokens_per_s']:,.0f} tokens/s"
    return str(job["layout"])
