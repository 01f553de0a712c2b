"""Presentation: the `focus-eval` command (cli), pictures (visualize, fonts), `make demo`, and
`focus-eval compare` (compare/). Nothing here changes what a method computes."""
