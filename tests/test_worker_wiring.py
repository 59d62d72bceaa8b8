"""How a worker is set up for the ACD: the capacity rule (a flow with a queue node counts
two legs per caller), agent legs through the front (worker.outbound_proxy), and the URL an
agent leg's Call-Info names."""

from __future__ import annotations

import pytest

from ivr.config import ConfigError, Settings, load_settings
from ivr.worker import legs_per_caller, max_callers, phone_config
from ivr.zygote import worker_settings
from tests.test_flow_nodes import make_flow

IVR_ONLY = make_flow({"m": {"type": "play", "prompts": ["welcome"], "next": "bye"}})
WITH_QUEUE = make_flow({"m": {"type": "menu", "prompts": ["main_menu"],
                              "choices": {"1": "q"}, "on_failure": "bye"},
                        "q": {"type": "queue", "queue": "sales", "on_unavailable": "bye"}})


@pytest.mark.parametrize(("flow", "max_calls", "per_caller", "callers"), [
    (IVR_ONLY, 4, 1, 4),
    (WITH_QUEUE, 4, 2, 2),
    (WITH_QUEUE, 3, 2, 1),
    (WITH_QUEUE, 1, 2, 1),  # one leg: the caller is taken, an Offer then fails (no leg)
])
def test_a_flow_with_a_queue_counts_two_legs_a_caller(flow: object, max_calls: int,
                                                      per_caller: int, callers: int) -> None:
    assert legs_per_caller(flow) == per_caller  # type: ignore[arg-type]
    assert max_callers(flow, max_calls) == callers  # type: ignore[arg-type]


def pooled(env: dict[str, str]) -> Settings:
    base = load_settings(None, env={"IVR_SIP_PORT": "5070", **env})
    return worker_settings(base, "w003", 5103, 14000, 20, "127.0.0.1")


def test_pooled_workers_behind_the_front_send_agent_legs_through_it() -> None:
    s = pooled({})
    assert s.worker.outbound_proxy == "127.0.0.1:5070"
    assert s.worker.trusted_sources == ["127.0.0.1:5070"]
    assert phone_config(s).outbound_proxy == "127.0.0.1:5070"


def test_an_outbound_proxy_setting_wins_and_without_the_front_there_is_none() -> None:
    assert pooled({"IVR_WORKER_OUTBOUND_PROXY": "10.0.0.5:5060"}).worker.outbound_proxy == \
        "10.0.0.5:5060"
    assert pooled({"IVR_FRONT_ENABLED": "false"}).worker.outbound_proxy is None
    assert phone_config(load_settings(None, env={})).outbound_proxy is None


def test_a_bad_outbound_proxy_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={"IVR_WORKER_OUTBOUND_PROXY": "not a host:port:x"})
    assert "IVR_WORKER_OUTBOUND_PROXY" in str(info.value)


@pytest.mark.parametrize(("env", "url"), [
    ({}, "http://127.0.0.1:8080"),
    ({"IVR_HTTP_PORT": "9090", "IVR_HTTP_BIND_ADDRESS": "10.1.2.3"}, "http://10.1.2.3:9090"),
    ({"IVR_SIP_BIND_ADDRESS": "0.0.0.0", "IVR_SIP_PUBLIC_ADDRESS": "192.0.2.7"},
     "http://192.0.2.7:8080"),
    ({"IVR_HTTP_BIND_ADDRESS": "::1"}, "http://[::1]:8080"),
])
def test_the_call_info_url_of_the_http_api(env: dict[str, str], url: str) -> None:
    assert load_settings(None, env=env).http_url == url


class _BusyPhone:
    active_legs = 4

    async def place_call(self, uri: str, headers: dict[str, str]) -> None:
        raise AssertionError("no INVITE may be sent without a free call slot")


def test_an_agent_leg_without_a_free_call_slot_fails_at_once() -> None:
    import asyncio

    from ivr.agent_media import NoFreeLegError, PhoneMedia
    from media import MediaError

    media = PhoneMedia(_BusyPhone(), 4)  # type: ignore[arg-type]
    with pytest.raises(NoFreeLegError, match="no free call slot") as info:
        asyncio.run(media.place_call("sip:1001@127.0.0.1", {}))
    assert isinstance(info.value, MediaError)  # what AcdCall reports as OfferFailed(error)
