"""Reports: terminal tables (rich), PNG (matplotlib) and HTML (plotly) of accuracy-vs-cost frontiers."""
