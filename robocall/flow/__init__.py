"""Call flows: model -> parse/validate -> templates -> compile -> machine. Pure: no I/O."""
