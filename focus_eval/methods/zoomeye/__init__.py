"""ZoomEye (Shen et al., arXiv 2411.16044), the tree-search baseline: work in progress; the
prompts (`prompts.py`) are final."""
