#!/usr/bin/env bash
# Prints the path of a usable `uv`, installing it from PyPI first when it is missing.
# Used by the Makefile and .ci/run so a fresh machine with only Python 3.11+ works.
set -euo pipefail
if command -v uv >/dev/null 2>&1; then command -v uv; exit 0; fi
for candidate in "$HOME/.local/bin/uv" "$HOME/.cargo/bin/uv"; do
  if [ -x "$candidate" ]; then echo "$candidate"; exit 0; fi
done
python3 -m pip install --quiet --user uv >&2 || python3 -m pip install --quiet --user --break-system-packages uv >&2
if command -v uv >/dev/null 2>&1; then command -v uv; exit 0; fi
if [ -x "$HOME/.local/bin/uv" ]; then echo "$HOME/.local/bin/uv"; exit 0; fi
python3 - <<'PY'
import os, sysconfig
p = os.path.join(sysconfig.get_path("scripts", f"{os.name}_user"), "uv")
print(p if os.path.exists(p) else "")
PY
