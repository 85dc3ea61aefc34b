"""Live records: the hub that pushes each acknowledged write to the streams that follow it."""
