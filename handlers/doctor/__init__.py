"""Doctor bot routers."""

from __future__ import annotations

from aiogram import F, Router

from handlers.doctor import start


def get_router() -> Router:
    """All doctor routers, limited to private chats with people."""
    root = Router(name="doctor")
    root.message.filter(F.chat.type == "private", ~F.from_user.is_bot)
    root.callback_query.filter(~F.from_user.is_bot)
    root.include_routers(start.routes.router())
    return root
