"""Small errors that tell what to do: no network for certs, a directory to upload, an unknown
model or scope, a typo in a keyword argument, a closed client, the port doctor really tried."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from gigapy import AsyncGigaChat, ClientClosedError, ConfigurationError, GigaChat, GigaChatError, InvalidArgumentError
from gigapy.testing import client_settings
from tests.cli.conftest import Invoke


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_certs_install_without_network_points_to_from_file(cli: Invoke) -> None:
    result = cli("certs", "install", extra_env={"GIGAPY_CERTS_URL": f"https://127.0.0.1:{closed_port()}/ca.crt"})
    assert result.exit_code == 3
    assert "cannot download the certificate" in result.stderr
    assert "gigapy certs install --from-file FILE" in result.stderr
    assert "--base-url" not in result.stderr  # not the advice for API requests


def test_files_upload_of_a_directory_says_so(cli: Invoke, tmp_path: Path) -> None:
    result = cli("files", "upload", str(tmp_path))
    assert result.exit_code == 2
    assert f"{tmp_path} is a directory" in result.stderr
    assert "file not found" not in result.stderr


@pytest.mark.parametrize("args", [("chat", "-m", "GigaChat-9", "Привет"), ("model", "NoSuchModel")])
def test_an_unknown_model_suggests_gigapy_models(cli: Invoke, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.exit_code == 1
    assert "404" in result.stderr
    assert "fix: `gigapy models` lists the models" in result.stderr


@pytest.mark.parametrize(("given", "meant"), [("pers", "GIGACHAT_API_PERS"), ("corp", "GIGACHAT_API_CORP"),
                                              ("b2b", "GIGACHAT_API_B2B"), ("GIGACHAT_API_PRES", "GIGACHAT_API_PERS")])
def test_a_short_or_misspelt_scope_gets_did_you_mean(cli: Invoke, given: str, meant: str) -> None:
    result = cli("--scope", given, "models")
    assert result.exit_code == 2
    assert f"did you mean {meant}?" in result.stderr


def test_keyword_typos_get_did_you_mean(make_client: Any, emu: Any) -> None:
    client = make_client()
    with pytest.raises(InvalidArgumentError, match="did you mean 'temperature'"):
        client.completion("Привет", temprature=0.5)
    with pytest.raises(InvalidArgumentError, match="did you mean 'model'"):
        client.embedding(["текст"], modle="Embeddings")
    with pytest.raises(ConfigurationError, match="did you mean 'timeout'"):
        GigaChat(**client_settings(emu), timout=5)
    with pytest.raises(ConfigurationError, match="did you mean 'timeout'"):
        client.with_options(timout=5)
    with pytest.raises(ConfigurationError, match="'temperature' is a request parameter"):
        GigaChat(**client_settings(emu), temprature=0.5)
    assert emu.stats()["api_requests"] == {}  # refused before anything was sent


def test_a_closed_client_raises_a_gigapy_error(emu: Any) -> None:
    client = GigaChat(**client_settings(emu))
    assert client.completion("Привет").text
    client.close()
    with pytest.raises(ClientClosedError, match="the client is closed") as caught:
        client.completion("Привет")
    assert isinstance(caught.value, GigaChatError) and isinstance(caught.value, RuntimeError)
    with pytest.raises(ClientClosedError), client.completion_stream("Привет"):
        pass

    async def use_after_aclose() -> None:
        aclient = AsyncGigaChat(**client_settings(emu))
        assert (await aclient.completion("Привет")).text
        await aclient.aclose()
        with pytest.raises(ClientClosedError):
            await aclient.completion("Привет")

    asyncio.run(use_after_aclose())


def test_doctor_names_the_port_it_really_used(cli: Invoke) -> None:
    port = closed_port()
    result = cli("--base-url", f"http://127.0.0.1:{port}/api/v1", "--auth-url", f"http://127.0.0.1:{port}/oauth",
                 "doctor")
    assert result.exit_code != 0
    assert f"127.0.0.1:{port}" in result.stdout
    assert f"port {port} of 127.0.0.1" in " ".join(result.stdout.split())
    assert "9443" not in result.stdout
