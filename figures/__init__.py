"""Every poster figure, drawn from result records (never by training) and `theory` curves.

    python -m figures.poster [--results DIR] [--out DIR] [--run-missing quick]

Modules: `style` (one look per method), `records` (load, select, mean ± std over seeds),
`curves` (per-method curves), `spec` (figure → PNG + PDF); one module per figure —
`error_grid`, `spheres`, `linear`, `theorem`, `relaxation`; `text_panels` and `poster`
compose the A0 poster; `commands` and `run_missing` produce missing records at CPU scale.
"""
