"""The linear-relaxation engine behind `realdata.bounds` (the public front)."""
