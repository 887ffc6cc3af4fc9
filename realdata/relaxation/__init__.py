"""The linear-relaxation engine behind `realdata.bounds` (the public front): layer classes
(`layers.py`), ReLU relaxations (`relus.py`), method recipes (`recipes.py`) and the passes."""
