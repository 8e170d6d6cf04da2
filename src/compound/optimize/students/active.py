"""Labels where they teach most: margin sampling within k-means clusters of the rows' embeddings.

``choose`` picks ``k`` rows of a candidate pool for the teacher to label next: the pool's embeddings are
split into ``k`` clusters (k-means, seeded), and from each cluster the row the current student is least
sure of (the smallest margin between its two most probable labels) is taken. Uncertain rows teach the
most; one per cluster keeps them diverse (pure margin sampling piles up near one stretch of the boundary).

Active sampling biases any estimate made on the rows it picks (they are the hardest), so ``auto`` never
certifies a student on them: its certificate is learned on a separate hold-out drawn at random
(``optimize.staged``), which keeps the Clopper-Pearson guarantee exact. Pure: numpy and scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def margins(probs: Any) -> Any:
    """Per row: top-1 probability minus top-2 (0: the student cannot tell the two apart)."""
    import numpy as np

    p = np.sort(np.asarray(probs, dtype=float), axis=1)
    return p[:, -1] - (p[:, -2] if p.shape[1] > 1 else 0.0)


def choose(vectors: Any, probs: Any, pool: Sequence[int], k: int, seed: int = 0) -> list[int]:
    """``k`` rows of ``pool`` (indices into ``vectors`` and ``probs``), one per k-means cluster, each its
    cluster's least certain row; all of ``pool`` when it holds no more than ``k``."""
    import numpy as np

    pool = list(pool)
    if k <= 0:
        return []
    if len(pool) <= k:
        return pool
    from sklearn.cluster import KMeans

    x = np.asarray(vectors)[pool]
    m = margins(np.asarray(probs)[pool])
    clusters = KMeans(n_clusters=k, n_init="auto", random_state=seed, max_iter=50).fit_predict(x)
    picked: list[int] = []
    for c in range(k):
        members = np.flatnonzero(clusters == c)
        if len(members):
            picked.append(pool[int(members[np.argmin(m[members])])])
    if len(picked) < k:  # empty clusters: fill with the least certain rows left
        rest = [i for i in np.argsort(m, kind="stable") if pool[int(i)] not in set(picked)]
        picked += [pool[int(i)] for i in rest[: k - len(picked)]]
    return picked
