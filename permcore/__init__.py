"""Pure permission core: identifiers, pattern matching and the projector. No I/O."""
