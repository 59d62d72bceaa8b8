"""Call flows: the YAML language (:mod:`.model`) and its interpreter (:mod:`.interpreter`)."""

from .interpreter import Action, FlowRun, Hangup, Note, Play, RunState, StopPlayback
from .model import (
    Flow,
    FlowError,
    FlowIssue,
    check_flow_prompts,
    check_flow_speech,
    check_prompts,
    flow_languages,
    load_flow,
    parse_flow,
)

__all__ = [
    "Action",
    "Flow",
    "FlowError",
    "FlowIssue",
    "FlowRun",
    "Hangup",
    "Note",
    "Play",
    "RunState",
    "StopPlayback",
    "check_flow_prompts",
    "check_flow_speech",
    "check_prompts",
    "flow_languages",
    "load_flow",
    "parse_flow",
]
