"""tripctl: the operator's CLI for tripmesh."""
