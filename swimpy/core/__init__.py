"""SWIM + Lifeguard state machine: pure, no I/O (see DESIGN.md)."""
