"""The one place litellm is imported (lazily: `import litellm` costs ~4 s of CPU here)."""

from __future__ import annotations

import os
from typing import Any


def load_litellm() -> Any:
    """The litellm module (typed Any: its own annotations are not worth type-checking here)."""
    # Offline: without this litellm downloads its price map at import and retries for seconds.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    # Unpriced models make completion_cost() print a provider list to stdout; we handle it.
    litellm.suppress_debug_info = True
    return litellm
