"""Files across two bots, as the outbox sender relays them: per-bot file ids, getFile and the
download route of the bot that received a file, multipart uploads of every relayed kind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile

from bot.sandbox.client import EmulatorClient
from bot.sandbox.emulator import BotApiEmulator, RateLimits

TOKEN = "100001:AAAemulatorTestTokenAlpha"
OTHER_TOKEN = "100002:AAAemulatorTestTokenBeta"
BOT = "careline_test_bot"
OTHER = "careline_other_bot"


@pytest.fixture
async def emu() -> AsyncIterator[BotApiEmulator]:
    emulator = BotApiEmulator(limits=RateLimits(enabled=False), seed=7)
    emulator.register_bot(TOKEN, username=BOT, first_name="Careline Test")
    emulator.register_bot(OTHER_TOKEN, username=OTHER, first_name="Other")
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def bots(emu: BotApiEmulator) -> AsyncIterator[tuple[Bot, Bot]]:
    api = TelegramAPIServer.from_base(emu.base_url)
    first = Bot(TOKEN, session=AiohttpSession(api=api))
    second = Bot(OTHER_TOKEN, session=AiohttpSession(api=api))
    yield first, second
    await first.session.close()
    await second.session.close()


async def test_relay_path_between_two_bots(emu: BotApiEmulator, bots: tuple[Bot, Bot]) -> None:
    first, second = bots
    async with EmulatorClient(emu.base_url) as client:
        uid = int((await client.create_user("Alice"))["id"])
        await client.start(uid, BOT)
        await client.start(uid, OTHER)
        sent = await client.send_voice(uid, BOT, b"OggS voice bytes", "note.ogg")
        file_id = sent["message"]["voice"]["file_id"]

        # The receiving bot can fetch it; the other bot can't use its id at all.
        info = await first.get_file(file_id)
        assert info.file_path is not None and info.file_size == len(b"OggS voice bytes")
        data = await first.download_file(info.file_path)
        assert data is not None and data.read() == b"OggS voice bytes"
        with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
            await second.get_file(file_id)
        with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
            await second.send_voice(uid, file_id)
        # nor its download path
        async with aiohttp.ClientSession() as http:
            url = f"{emu.base_url}/file/bot{OTHER_TOKEN}/{info.file_path}"
            async with http.get(url) as resp:
                assert resp.status == 404

        # Uploaded again through the other bot: same bytes, a file id of that bot.
        relayed = await second.send_voice(uid, BufferedInputFile(b"OggS voice bytes", "n.ogg"))
        assert relayed.voice is not None and relayed.voice.file_id != file_id
        assert await client.download(relayed.voice.file_id) == b"OggS voice bytes"
        msgs = (await client.messages(uid, OTHER))["messages"]
        assert msgs[-1]["voice"]["file_id"] == relayed.voice.file_id


async def test_send_audio_and_video_multipart(emu: BotApiEmulator, bots: tuple[Bot, Bot]) -> None:
    first, _ = bots
    async with EmulatorClient(emu.base_url) as client:
        uid = int((await client.create_user("Alice"))["id"])
        await client.start(uid, BOT)
        audio = await first.send_audio(
            uid,
            BufferedInputFile(b"ID3 audio", "cough.mp3"),
            caption="<b>Cough</b>",
            parse_mode="HTML",
            protect_content=True,
        )
        assert audio.audio is not None and audio.audio.file_name == "cough.mp3"
        assert audio.audio.mime_type == "audio/mpeg" and audio.audio.duration >= 0
        assert audio.caption == "Cough" and audio.has_protected_content
        video = await first.send_video(uid, BufferedInputFile(b"\x00\x00\x00 ftyp", "gait.mp4"))
        assert video.video is not None and video.video.width > 0
        assert video.video.file_id.startswith("BAAC") and audio.audio.file_id.startswith("CQAC")
        for fid, body in ((audio.audio.file_id, b"ID3 audio"), (video.video.file_id, None)):
            info = await first.get_file(fid)
            assert info.file_path is not None
            got = await first.download_file(info.file_path)
            assert got is not None
            if body is not None:
                assert got.read() == body
        # a file id is bound to its kind
        with pytest.raises(TelegramBadRequest, match="type of file mismatch"):
            await first.send_video(uid, audio.audio.file_id)
        msgs = (await client.messages(uid, BOT))["messages"]
        assert [m.get("audio") is not None for m in msgs[-2:]] == [True, False]
        assert msgs[-1]["video"]["file_name"] == "gait.mp4"
