"""The whole ACD: the queue core (``core.py``) with blind transfers and segments
(``transfer.py``), consults and conferences (``consult.py``) and callbacks and own agents
(``callbacks.py``), each a layer that handles its own events and passes the rest on
(``super()``). Method resolution order: Acd, CallbackAcd, ConsultingAcd, TransferringAcd,
core.Acd."""

from __future__ import annotations

from .callbacks import CallbackAcd
from .consult import ConsultingAcd


class Acd(CallbackAcd, ConsultingAcd):
    """The ACD the stack runs: every layer."""
