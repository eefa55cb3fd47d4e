"""Contrastive gradient accumulation (BASIC, Pham et al. 2021; GradCache, Gao et al. 2021).

A contrastive loss couples every pair in the batch, so ordinary accumulation (averaging the
micro-batches' own losses) would change the objective. Instead, with B = k m rows:

  1. embed:   (x, y) = f(params, batch), one micro-batch of m rows at a time, no activations
              kept (a forward pass that is never differentiated);
  2. loss:    L(x, y, scale, bias) on the full batch, with g = dL/d(x, y) (B x d, small) and
              the gradient of the temperature/bias parameters that L reads directly;
  3. replay:  for each micro-batch j, dL/dparams += vjp(f(., batch_j))(g_j), re-running its
              forward pass and keeping its activations only while back-propagating it.

By the chain rule dL/dparams = sum_j (d f_j / d params)^T g_j, exactly the full-batch
gradient; activation memory is that of one micro-batch. A per-example auxiliary loss that f
may return beside (x, y) (CoCa's captioning cross-entropy: its batch mean is a sum over
examples) is one more output of f, its g = weight / B per row, pulled back in the same
replay. Batch-norm statistics are per micro-batch (as with any accumulation), so equality
holds for models without batch norm.

Micro-batch j holds rows j, j + k, j + 2k, ...: every device's shard of the batch contributes
to every micro-batch, so all devices stay busy and no rows move between devices.
"""
import jax
import jax.numpy as jnp


def split_microbatches(tree, k: int):
    """(B, ...) -> (k, B/k, ...), micro-batch j = rows j::k."""

    def split(a):
        if a.shape[0] % k:
            raise ValueError(f"batch of {a.shape[0]} rows does not split into {k} micro-batches")
        return jnp.swapaxes(a.reshape(a.shape[0] // k, k, *a.shape[1:]), 0, 1)

    return jax.tree.map(split, tree)


def merge_microbatches(tree):
    """(k, B/k, ...) -> (B, ...), the inverse of split_microbatches."""
    return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1).reshape(-1, *a.shape[2:]), tree)


def value_and_grad(embed, embedding_loss, params, model_state, batch, rng, rows, k: int):
    """(loss, outputs, d loss / d params, d loss / d rows, new model_state) of the full batch,
    k micro-batches at a time.

    embed(params, model_state, batch, rng) -> (pair, model_state) for one micro-batch, pair
    = (x, y) or (x, y, aux) with aux per-example (its rng is fold_in(rng, j) in both passes, so
    a stochastic forward replays identically); embedding_loss(pair, params, rows) -> (scalar
    loss of the whole batch's pair, its outputs); it reads only the scalar parameters (e.g.
    the temperature) of params, and `rows` are the batch's per-example loss state.
    """
    micro = split_microbatches(batch, k)
    micro_rngs = jax.vmap(lambda j: jax.random.fold_in(rng, j))(jnp.arange(k))
    frozen = jax.lax.stop_gradient(params)

    def embed_one(model_state, inputs):
        microbatch, micro_rng = inputs
        pair, model_state = embed(frozen, model_state, microbatch, micro_rng)
        return model_state, pair

    # 1. Embeddings of every micro-batch; scan keeps only its outputs, (k, B/k, d) each.
    model_state, pairs = jax.lax.scan(embed_one, model_state, (micro, micro_rngs))
    pair = merge_microbatches(pairs)

    # 2. Full-batch loss; its gradient w.r.t. the embeddings, scalar parameters and rows.
    (loss, outputs), (grad_pair, grads, row_grads) = jax.value_and_grad(
        embedding_loss, argnums=(0, 1, 2), has_aux=True)(pair, params, rows)
    cached = split_microbatches(grad_pair, k)

    # 3. Replay each micro-batch and pull its slice of the embedding gradient back.
    def replay(grads, inputs):
        microbatch, micro_rng, cached_grad = inputs
        _, pullback = jax.vjp(lambda p: embed(p, model_state, microbatch, micro_rng)[0], params)
        (micro_grads,) = pullback(cached_grad)
        return jax.tree.map(jnp.add, grads, micro_grads), None

    grads, _ = jax.lax.scan(replay, grads, (micro, micro_rngs, cached))
    return loss, outputs, grads, row_grads, model_state
