"""mailslot's bench: `python -m bench` measures the gateway against its ceilings and a peer (see RESULTS.md)."""
