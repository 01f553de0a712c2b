"""Literal transcription of the paper's Fig. 7 pseudocode: the reference that
focus_eval.methods.focus.relevance.object_relevance_map is tested (tests/test_relevance.py) and benchmarked
(benchmarks/relevance_map.py) against. It materialises X [O, N, N] and eye(N) on purpose.

Only three things are not in the figure: `reshape` is spelled as permute + reshape (heads
concatenated per token), `ones_like` / `zeros_like` get a float dtype (the indices are
long), and `row_normalization` selects between the line as PyTorch broadcasts it ("column") and
the comment's reading ("target_row", keepdim=True).
"""

import torch
import torch.nn.functional as F


def fig7_relevance_map(X, x_target, x_visual, x_layer, row_normalization="column"):
    X = F.normalize(X.float(), dim=-1)  # O, H, N, D
    O, H, N, D = X.shape
    X = X.permute(0, 2, 1, 3).reshape(O, N, H * D)  # O, N, H*D

    # calculate cosine similarity
    X = torch.bmm(X, X.permute(0, 2, 1))  # O, N, N

    # initialize relevance map
    object_rel_map = torch.ones_like(x_visual, dtype=X.dtype)

    for target in x_target:
        # initialize pseudo-attn for each target token
        pseudo_attn = torch.zeros_like(x_visual, dtype=X.dtype)  # [a**2]

        for layer in x_layer:
            identity = torch.eye(N)  # [N, N]

            # add residual connection
            X_layer = (X[layer] + identity) / 2  # [N, N]

            # row-wise normalization
            if row_normalization == "target_row":
                X_layer /= X_layer.sum(dim=-1, keepdim=True)  # [N, N]
            else:
                X_layer /= X_layer.sum(dim=-1)  # [N, N]

            layer_pseudo_attn = X_layer[target, x_visual]  # [a**2]

            pseudo_attn += layer_pseudo_attn  # [a**2]

        # global normalization
        pseudo_attn /= pseudo_attn.sum()

        # element-wise multiplication of pseudo-attentions
        object_rel_map *= pseudo_attn

    return object_rel_map
