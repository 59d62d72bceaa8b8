"""The flow and prompt sets a worker serves calls with, loaded and checked as one unit.

Used at start (zygote, lone worker), by the controller to vet a reload before any worker
sees it, and by workers on reload: either the whole new set is good and replaces the old
one for new calls, or nothing changes. Calls in progress keep the objects they started with.
No pjsua2 here: the controller imports this.
"""

from __future__ import annotations

from media.errors import PromptError

from .config import Settings
from .flow import Flow, FlowError, check_flow_prompts, load_flow
from .prompts import PromptSet, load_prompt_sets

Loaded = tuple[Flow, dict[str, PromptSet]]


class FlowSetError(Exception):
    """The flow or its prompts cannot be used; the message lists every problem."""


def load_flow_and_prompts(settings: Settings) -> Loaded:
    """The flow and every prompt set, checked against each other (the flow's languages)."""
    try:
        flow, smap = load_flow(settings.paths.flow)
    except FlowError as exc:
        raise FlowSetError(f"the flow cannot be used:\n{exc}") from exc
    cache = settings.paths.var_dir / "cache" / "prompts"
    try:
        sets = load_prompt_sets(settings.paths.prompts_dir, cache, settings.media.clock_rate_hz,
                                store_root=settings.paths.var_dir / "prompts")
    except PromptError as exc:
        raise FlowSetError(str(exc)) from exc
    issues = check_flow_prompts(flow, smap, {name: set(ps.files) for name, ps in sets.items()})
    if issues:
        raise FlowSetError("the flow cannot be used:\n" + str(FlowError(issues)))
    return flow, sets
