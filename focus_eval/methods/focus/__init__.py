"""FOCUS (the paper): relevance maps from cached value vectors (`relevance`, `maps`), ROI
proposals (`proposals`), existence ranking (`ranking`), the search that ties them (`search`)."""

from focus_eval.methods.focus.search import search

__all__ = ["search"]
