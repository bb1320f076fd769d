"""The packer: discover -> select -> decode -> redact -> render -> count -> fit -> assemble.

``pack()`` (run.py) is a straight sequence over the stages in this folder: select.py decides
from paths, decode.py from content, render.py writes sections, fit.py chooses what fits the
budget, cache.py remembers results by content, model.py is what comes out.
"""

from __future__ import annotations

from .model import Pack, PackedFile, summarize
from .run import pack, redaction_key, settings_for

__all__ = ["Pack", "PackedFile", "pack", "redaction_key", "settings_for", "summarize"]
