"""One process of a real multi-process read: jax.distributed over gloo on 127.0.0.1, the
trainer's own data path (`make_train_data` on the mesh's batch sharding) over webdataset
shards, `--steps` global batches; prints the example ids this process's devices received as
JSON. Run by tests/data/test_file_training.py, once per process."""
import argparse
import json

import jax


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--process_id", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    args = parser.parse_args()
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{args.port}", 2, args.process_id)

    from contrastive import parallel
    from contrastive.data import from_config
    from tests.train.helpers import tiny_config

    config = tiny_config("/unused", batch_size=args.batch, data__name="webdataset",
                         data__shards=args.shards, data__image_size=8)
    mesh = parallel.make_mesh({"data": -1})
    data = from_config.make_train_data(config, parallel.batch_sharding(mesh))
    ids = []
    for _ in range(args.steps):
        batch = next(data.iterator)
        for shard in sorted(batch["index"].addressable_shards, key=lambda s: s.index[0].start):
            ids += [int(i) for i in shard.data]
    print(json.dumps({"process": jax.process_index(), "devices": jax.local_device_count(),
                      "ids": ids}))


if __name__ == "__main__":
    main()
