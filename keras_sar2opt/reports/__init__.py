"""Run folders turned into figures: training curves (report Figures 6 and 8) and sample grids (Figures 1, 2)."""
