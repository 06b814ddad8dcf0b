"""One consume loop for every service: see `loop` (the skeleton and its two hooks), `policy`
(commit and error policies), `gate` (pause reasons), `offsets` (the committable prefix)."""

from stt_common.consume.gate import Gate
from stt_common.consume.loop import ConsumeLoop, HandedBack, Handler, Ready
from stt_common.consume.offsets import Offsets
from stt_common.consume.policy import CommitPolicy, ErrorPolicy, Verdict

__all__ = [
    "CommitPolicy",
    "ConsumeLoop",
    "ErrorPolicy",
    "Gate",
    "HandedBack",
    "Handler",
    "Offsets",
    "Ready",
    "Verdict",
]
