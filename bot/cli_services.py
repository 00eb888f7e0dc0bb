"""``python bot.py services list|add|price|disable|enable``: the clinic's consultation services
and prices, from the shell (audited as ``admin:cli``; the doctor bot's ``/services`` does the
same for admins)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.settings import Settings

if TYPE_CHECKING:
    from flows.services import Price

ACTOR = "admin:cli"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``services`` command and its actions."""
    svc = sub.add_parser("services", help="consultation types and prices (text, phone, video)")
    s_sub = svc.add_subparsers(dest="services_command", metavar="ACTION", required=True)
    s_list = s_sub.add_parser("list", help="the clinic's consultation services")
    s_list.add_argument("--all", action="store_true", help="disabled ones too")
    s_add = s_sub.add_parser("add", help="add a consultation service")
    s_add.add_argument("mode", help="text, phone or video")
    scope = s_add.add_mutually_exclusive_group()
    scope.add_argument("--department", help="for one department (e.g. cardiology)")
    scope.add_argument("--doctor", help="for one doctor (id, or a prefix of 6+ characters)")
    s_add.add_argument("--minutes", type=int, help="a call's length (phone, video; default 15)")
    s_add.add_argument(
        "--window", type=int, metavar="HOURS", help="text: the response window (default 24)"
    )
    s_add.add_argument(
        "--price",
        default="free",
        help='e.g. "300 CNY", "25.50 EUR", "150 XTR" (Telegram Stars) or "free" (default)',
    )
    s_price = s_sub.add_parser("price", help="change a service's price")
    s_price.add_argument("id", help="service id, or a unique prefix of at least 6 characters")
    s_price.add_argument("price", help='e.g. "250 CNY", "100 XTR" or "free"')
    for name, text in (("disable", "stop selling a service"), ("enable", "sell it again")):
        s_on = s_sub.add_parser(name, help=text)
        s_on.add_argument("id", help="service id, or a unique prefix of at least 6 characters")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one ``services`` action; 0 on success, 2 on bad input (one line on stderr)."""
    from bot.app import open_database
    from flows import services
    from locales import Translator

    tr = Translator(settings.default_locale).plain
    db = await open_database(settings)
    try:
        async with db.uow() as uow:
            try:
                if args.services_command == "list":
                    rows = await services.services(uow, include_disabled=args.all)
                    for v in rows:
                        line = services.describe(v, settings.default_locale, tr)
                        print(f"{v.id[:8]}  {line}")
                    print(f"{len(rows)} service(s)")
                    return 0
                if args.services_command == "add":
                    added = await services.add(
                        uow, ACTOR, args.mode, department=args.department, doctor=args.doctor,
                        minutes=args.minutes, response_hours=args.window, price=args.price,
                    )  # fmt: skip
                    await uow.commit()
                    v = services.view(added)
                    print(f"service {v.id[:8]} added: "
                          f"{services.describe(v, settings.default_locale, tr)}")  # fmt: skip
                    _warn_provider(settings, v.price, tr)
                    return 0
                service = await services.find(uow, args.id)
                if args.services_command == "price":
                    price = await services.set_price(uow, ACTOR, service, args.price)
                    await uow.commit()
                    shown = services.format_price(price, settings.default_locale, tr)
                    print(f"service {service.id[:8]}: {shown}")
                    _warn_provider(settings, price, tr)
                    return 0
                changed = await services.set_active(
                    uow, ACTOR, service, args.services_command == "enable"
                )
                await uow.commit()
                state = "active" if service.active else "disabled"
                print(f"service {service.id[:8]}: {state}" + ("" if changed else " (already)"))
                return 0
            except services.NotFound as exc:
                print(f"careline: {exc}", file=sys.stderr)
                return 2
            except services.BadInput as exc:
                print(f"careline: {tr(exc.msgid, **exc.params)}", file=sys.stderr)
                return 2
    finally:
        await db.dispose()


def _warn_provider(settings: Settings, price: Price, tr: Callable[..., str]) -> None:
    """A card price without a provider token cannot be paid yet: say so (exit code stays 0)."""
    from flows.services import STARS

    if not price.free and price.currency != STARS and settings.payment_provider_token is None:
        print(f"careline: {tr('svc.no_provider', currency=price.currency)}", file=sys.stderr)
