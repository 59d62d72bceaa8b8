"""bench/bench_acd.py's own pieces (the bench itself runs on demand, not here): the ACD file
it writes is one the stack accepts, its sipp scenarios render completely, and the offer
latency is measured from each agent's free time to the INVITE at its phone."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ivr.acd.config import load_acd

ROOT = Path(__file__).resolve().parent.parent


def _bench() -> ModuleType:
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_acd", ROOT / "bench" / "bench_acd.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_acd"] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


bench = _bench()


def test_the_acd_file_has_one_queue_and_every_agent_in_it(tmp_path: Path) -> None:
    ids = bench.agent_ids(3)
    acd = load_acd(bench.write_acd(tmp_path / "acd.yaml", ids))
    assert list(acd.queues) == ["bench"]
    assert sorted(acd.agents) == ["a0001", "a0002", "a0003"]
    assert all(dict(a.queues) == {"bench": 5} for a in acd.agents.values())


@pytest.mark.parametrize("name", ["agent_register.xml.in", "agent_uas.xml.in"])
def test_the_agents_scenarios_render_without_a_placeholder_left(name: str) -> None:
    text = bench.render(name, domain="127.0.0.1", uas_port=25070, expires_s=60,
                        answer_ms=1000, bye_timeout_ms=60000)
    assert "__" not in text.split("-->", 1)[1]
    with pytest.raises(ValueError, match="left unfilled"):
        bench.render(name)


def test_the_agents_credentials_file_holds_a_digest_keyword_per_agent(tmp_path: Path) -> None:
    lines = bench.write_agents_csv(tmp_path / "a.csv", ["a0001", "a0002"]).read_text()
    assert lines.splitlines() == [
        "SEQUENTIAL",
        f"a0001;[authentication username=a0001 password={bench.password_of('a0001')}]",
        f"a0002;[authentication username=a0002 password={bench.password_of('a0002')}]"]


def test_offer_latency_counts_from_each_calls_ring_to_its_first_invite() -> None:
    rings = {"c1": 10.0, "c2": 20.0}
    invites = [(10.05, "c1"), (20.2, "c2"), (21.0, "c2"), (5.0, "other")]
    assert bench.offer_latency_ms(rings, invites) == pytest.approx([50.0, 200.0])


def test_the_invite_log_of_the_agents_uas_is_read(tmp_path: Path) -> None:
    log = tmp_path / "inv.log"
    log.write_text("invite 1796126191.000000 317833.000000 1-24793@127.0.0.1 c0ffee\n")
    assert bench.invite_times(log) == [(pytest.approx(1796126191.317833), "c0ffee")]
