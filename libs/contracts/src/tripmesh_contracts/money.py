"""Money is exact (Decimal, never float) and reads as plain decimal text on the wire.

pydantic writes `Decimal("0E-8")` (what `numeric(18,8)` zero comes back as) as "0E-8";
clients expect "0.00000000". `Money` keeps Decimal in code and fixes only the JSON text.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import PlainSerializer


def plain_decimal(value: Decimal) -> str:
    return format(value, "f")


Money = Annotated[Decimal, PlainSerializer(plain_decimal, return_type=str, when_used="json")]
