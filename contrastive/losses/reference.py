"""Dense references: each loss written directly on the full N x N score matrix.

They are the oracles of the tests (run in float64, differentiated by plain autodiff) and the
"dense" baselines of the benchmarks. Short and obviously right, never fast or frugal.
"""
import jax
import jax.numpy as jnp


def clip_loss_dense(x, y, scale, label_smoothing=0.0):
    """OpenCLIP `ClipLoss`: mean of the two cross-entropies of logits = scale x y^T, against
    targets (1 - eps) I + eps / N (PyTorch's label_smoothing)."""
    logits = scale * x @ y.T
    n = x.shape[0]
    targets = (1 - label_smoothing) * jnp.eye(n) + label_smoothing / n
    ce_rows = -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits, axis=1), axis=1))
    ce_cols = -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits, axis=0), axis=0))
    return (ce_rows + ce_cols) / 2


def siglip_loss_dense(x, y, scale, bias, label_smoothing=0.0):
    """OpenCLIP `SigLipLoss`: -sum_ij log sigmoid(z_ij (scale x_i.y_j + bias)) / N; with
    smoothing, binary cross-entropy against targets (1 - eps) I + eps / 2."""
    logits = scale * x @ y.T + bias
    t = (1 - label_smoothing) * jnp.eye(x.shape[0], dtype=logits.dtype) + label_smoothing / 2
    bce = -(t * jax.nn.log_sigmoid(logits) + (1 - t) * jax.nn.log_sigmoid(-logits))
    return jnp.sum(bce) / x.shape[0]


def z_loss_dense(x, y, scale, a=1.0, b=4.0, eps=1e-6):
    """Z-loss of each row's and each column's positive, z-scored with NumPy-style mean/var."""
    logits = scale * x @ y.T

    def side(s):  # rows of s are the classifications
        z = (jnp.diag(s) - jnp.mean(s, axis=1)) / jnp.sqrt(jnp.var(s, axis=1) + eps * scale**2)
        return jnp.mean(jax.nn.softplus(a * (b - z)) / a)

    return 0.5 * (side(logits) + side(logits.T))


def supcon_loss_dense(z, labels, scale, decoupled=False):
    """SupCon L_out over anchors with a positive; `decoupled` drops positives from denominators."""
    logits = scale * z @ z.T
    n = z.shape[0]
    not_self = ~jnp.eye(n, dtype=bool)
    positive = (labels[:, None] == labels[None, :]) & not_self
    in_denominator = not_self & ~positive if decoupled else not_self
    log_denominator = jax.nn.logsumexp(jnp.where(in_denominator, logits, -jnp.inf), axis=1)
    log_denominator = jnp.where(jnp.isfinite(log_denominator), log_denominator, 0)
    count = positive.sum(axis=1)
    mean_positive = jnp.where(positive, logits, 0).sum(axis=1) / jnp.maximum(count, 1)
    has = count > 0
    return jnp.sum(jnp.where(has, log_denominator - mean_positive, 0)) / jnp.maximum(has.sum(), 1)


def ntxent_loss_dense(views, scale, decoupled=False):
    """SimCLR NT-Xent on V views: -log softmax over k != a of the anchor-positive logit,
    averaged over every ordered (anchor, other view of its sample) pair."""
    v, n, d = views.shape
    z = views.reshape(v * n, d)
    logits = scale * z @ z.T
    sample = jnp.tile(jnp.arange(n), v)
    same = sample[:, None] == sample[None, :]
    not_self = ~jnp.eye(v * n, dtype=bool)
    keep = not_self & ~same if decoupled else not_self
    log_denominator = jax.nn.logsumexp(jnp.where(keep, logits, -jnp.inf), axis=1, keepdims=True)
    log_denominator = jnp.where(jnp.isfinite(log_denominator), log_denominator, 0)
    pairs = same & not_self
    return jnp.sum(jnp.where(pairs, log_denominator - logits, 0)) / pairs.sum()


def dcl_loss_dense(x, y, scale, sigma=None):
    """DCL / DCLW: InfoNCE without the positive in the denominators, both directions."""
    logits = scale * x @ y.T
    n = x.shape[0]
    off = ~jnp.eye(n, dtype=bool)
    positive = jnp.diag(logits)
    weight = 1.0
    if sigma is not None:
        weight = 2 - n * jax.nn.softmax(jnp.sum(x * y, axis=1) / sigma)
    rows = jax.nn.logsumexp(jnp.where(off, logits, -jnp.inf), axis=1)
    cols = jax.nn.logsumexp(jnp.where(off, logits, -jnp.inf), axis=0)
    rows, cols = (jnp.where(jnp.isfinite(v), v, 0) for v in (rows, cols))
    return 0.5 * (jnp.mean(rows - weight * positive) + jnp.mean(cols - weight * positive))


def hard_negative_loss_dense(x, y, scale, beta, tau_plus=0.0):
    """HCL as in Robinson et al.'s code: importance weights neg^beta, debiased, clamped."""
    n = x.shape[0]
    m = n - 1
    if m == 0:  # no negatives: N_g = 0 and the loss is -log 1
        return 0.0 * jnp.sum(x * y) * scale
    off = ~jnp.eye(n, dtype=bool)

    def direction(logits):
        pos = jnp.exp(jnp.diag(logits))
        neg = jnp.where(off, jnp.exp(logits), 0)
        imp = jnp.where(off, jnp.exp(beta * logits), 0)
        reweighted = (imp * neg).sum(axis=1) / (imp.sum(axis=1) / m)
        ng = (-tau_plus * m * pos + reweighted) / (1 - tau_plus)
        ng = jnp.maximum(ng, m * jnp.exp(-scale))
        return jnp.mean(-jnp.log(pos / (pos + ng)))

    logits = scale * x @ y.T
    return 0.5 * (direction(logits) + direction(logits.T))


def cwcl_loss_dense(x, y, scale, frozen):
    """CWCL: cross-entropies against the soft targets W = (1 + U U^T) / 2, both directions."""
    u = frozen / jnp.linalg.norm(frozen, axis=1, keepdims=True)
    w = 0.5 * (1 + u @ u.T)
    logits = scale * x @ y.T
    rows = -jnp.sum(w * jax.nn.log_softmax(logits, axis=1), axis=1) / w.sum(axis=1)
    cols = -jnp.sum(w * jax.nn.log_softmax(logits, axis=0), axis=0) / w.sum(axis=0)
    return 0.5 * (jnp.mean(rows) + jnp.mean(cols))


def alignment_dense(x, y, alpha=2.0):
    unit = lambda a: a / jnp.linalg.norm(a, axis=1, keepdims=True)
    return jnp.mean(jnp.linalg.norm(unit(x) - unit(y), axis=1) ** alpha)


def uniformity_dense(z, t=2.0):
    """log mean over i != j of exp(-t ||z_i - z_j||^2), unit rows."""
    z = z / jnp.linalg.norm(z, axis=1, keepdims=True)
    squared = jnp.sum((z[:, None, :] - z[None, :, :]) ** 2, axis=-1)
    n = z.shape[0]
    off = ~jnp.eye(n, dtype=bool)
    return jnp.log(jnp.sum(jnp.where(off, jnp.exp(-t * squared), 0)) / (n * (n - 1)))


def auc_loss_dense(x, y, scale, surrogate="logistic", margin=0.0):
    logits = scale * x @ y.T
    n = x.shape[0]
    off = ~jnp.eye(n, dtype=bool)
    pos = jnp.diag(logits)
    if surrogate == "logistic":
        l = lambda gap: jnp.log1p(jnp.exp(margin - gap))
    else:
        l = lambda gap: jnp.maximum(margin - gap, 0) ** 2
    rows = jnp.where(off, l(pos[:, None] - logits), 0).sum()
    cols = jnp.where(off, l(pos[None, :] - logits), 0).sum()
    return 0.5 * (rows + cols) / (n * max(n - 1, 1))


def isogclr_loss_dense(x, y, tau_x, tau_y, u_x, u_y, gamma, rho):
    """iSogCLR in linear space: (value, gradient surrogate, new u_x, new u_y); u = 0: unseen.

    value = mean tau_i (log g_i + rho) per side; the surrogate's gradient is the estimator's:
    tau/u grad g for the embeddings and log u + rho + tau/u dg/dtau for the temperatures."""
    logits = x @ y.T
    n = x.shape[0]
    off = ~jnp.eye(n, dtype=bool)
    pos = jnp.diag(logits)
    sg = jax.lax.stop_gradient

    def side(gaps, tau, u_old):
        g = jnp.sum(jnp.where(off, jnp.exp(gaps / tau[:, None]), 0), axis=1) / max(n - 1, 1)
        u = (1 - gamma) * u_old + gamma * sg(g)
        value = jnp.mean(tau * (jnp.log(g) + rho))
        surrogate = jnp.mean(sg(tau / u) * g + tau * sg(jnp.log(u) + rho))
        return value, surrogate, u

    v1, s1, u_x = side(logits - pos[:, None], tau_x, u_x)
    v2, s2, u_y = side(logits.T - pos[:, None], tau_y, u_y)
    return v1 + v2, s1 + s2, u_x, u_y


def gram_loss_dense(anchors, others, scale, eps=1e-6):
    """GRAM: -scale x the volume of (a_i, m^1_j, .., m^K_j) as the logits of InfoNCE both ways;
    each pair's M x M Gram matrix formed in full and its determinant by LU (jnp.linalg.det)."""
    others = others[:, None] if others.ndim == 2 else others
    n, k, d = others.shape
    vectors = jnp.concatenate([jnp.broadcast_to(anchors[:, None, None], (n, n, 1, d)),
                               jnp.broadcast_to(others[None], (n, n, k, d))], axis=2)
    gram = vectors @ jnp.swapaxes(vectors, -1, -2)  # (n, n, M, M): pair (i, j)
    logits = -scale * jnp.sqrt(jnp.maximum(jnp.linalg.det(gram), 0) + eps)
    rows = jnp.diag(jax.nn.log_softmax(logits, axis=1))
    cols = jnp.diag(jax.nn.log_softmax(logits, axis=0))
    return -0.5 * (jnp.mean(rows) + jnp.mean(cols))


def amcl_loss_dense(x, y, num_heads=2, tau_min=0.05, tau_max=0.5, sharpness=5.0, beta=0.01):
    """AMCL: per head, the full matrix of cosines over their pair temperatures, InfoNCE both
    ways plus beta Omega(tau) of the positives; the heads averaged."""
    heads = []
    for xc, yc in zip(jnp.split(x, num_heads, axis=1), jnp.split(y, num_heads, axis=1)):
        xc = xc / jnp.linalg.norm(xc, axis=1, keepdims=True)
        yc = yc / jnp.linalg.norm(yc, axis=1, keepdims=True)
        s = xc @ yc.T
        tau = tau_min + (tau_max - tau_min) / (1 + jnp.exp(sharpness * s))
        logits = s / tau
        omega = xc.shape[1] / 2 * jnp.log(jnp.diag(tau)) + 1 / jnp.diag(tau)
        rows = -jnp.diag(jax.nn.log_softmax(logits, axis=1)) + beta * omega
        cols = -jnp.diag(jax.nn.log_softmax(logits, axis=0)) + beta * omega
        heads.append(0.5 * (jnp.mean(rows) + jnp.mean(cols)))
    return sum(heads) / num_heads


def mochi_loss_dense(x, y, scale, k=16, num_mixed=16, num_query_mixed=4):
    """MoCHi on the full S: jnp top-k of each row's negatives (j != i), the fixed mixing grid
    written out (pairs by gap then position, cycled; alpha_m = (m+1)/(s1+1) on the first;
    negative m mod k with beta_m = (m+1)/(2(s2+1)) on the query), synthetic logits appended to
    each row's softmax, both directions; k clipped to N - 1."""
    n = x.shape[0]
    k = min(k, n - 1)
    pairs = [(p, p + gap) for gap in range(1, k) for p in range(k - gap)]
    mixes = [(*pairs[m % len(pairs)], (m + 1) / (num_mixed + 1), 0.0)
             for m in range(num_mixed if pairs else 0)]  # (first, second, weight on it, on q)
    mixes += [(m % k, m % k, 1 - (m + 1) / (2 * (num_query_mixed + 1)),
               (m + 1) / (2 * (num_query_mixed + 1))) for m in range(num_query_mixed if k else 0)]
    first, second, a, b = (jnp.array(c) for c in zip(*mixes)) if mixes else [None] * 4
    sg = jax.lax.stop_gradient

    def direction(q, keys):
        logits = scale * q @ keys.T
        if mixes:
            sims = jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, q @ keys.T)
            hard = sg(keys)[jax.lax.top_k(sg(sims), k)[1]]  # (N, k, d), hardest first
            h = (a[:, None] * hard[:, first] + (1 - a - b)[:, None] * hard[:, second]
                 + b[:, None] * sg(q)[:, None, :])
            h = h / jnp.linalg.norm(h, axis=-1, keepdims=True)
            logits = jnp.concatenate([logits, scale * jnp.einsum("nd,nmd->nm", q, sg(h))], 1)
        lse = jax.scipy.special.logsumexp(logits, axis=1)
        return jnp.mean(lse - scale * jnp.sum(q * keys, axis=1))

    return 0.5 * (direction(x, y) + direction(y, x))


def sinkhorn_dense(scores, epsilon=0.05, iterations=3):
    """SwAV's `distributed_sinkhorn` in linear space with explicit matrices: Q = exp(P / eps)^T
    (K x B) over its total, then `iterations` times rows (prototypes) to 1/K and columns
    (examples) to 1/B; returned as (B, K) times B, so each example's row sums to 1."""
    q = jnp.exp(jax.lax.stop_gradient(scores) / epsilon).T
    k, b = q.shape
    q = q / jnp.sum(q)
    for _ in range(iterations):
        q = jnp.diag(1.0 / (k * jnp.sum(q, axis=1))) @ q
        q = q @ jnp.diag(1.0 / (b * jnp.sum(q, axis=0)))
    return (q * b).T


def swav_loss_dense(scores, scale, epsilon=0.05, iterations=3, num_global=2):
    """SwAV's swapped prediction as in its main_swav.py: for each global view t, the mean over
    the other views s of -mean_i sum_k q_t log softmax(scale p_s); averaged over t."""
    v = scores.shape[0]
    loss = 0.0
    for t in range(num_global):
        q = sinkhorn_dense(scores[t], epsilon, iterations)
        sub = 0.0
        for s in [s for s in range(v) if s != t]:
            sub -= jnp.mean(jnp.sum(q * jax.nn.log_softmax(scale * scores[s], axis=1), axis=1))
        loss += sub / (v - 1)
    return loss / num_global
