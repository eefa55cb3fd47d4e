"""contrastive: memory-efficient large-batch contrastive learning in JAX/Flax."""
import setuptools

setuptools.setup(
    name="contrastive",
    version="0.1.0",
    description="Large-batch contrastive learning (CLIP, SigLIP, SimCLR, ...) in JAX/Flax "
    "with a blockwise loss that never holds the N x N similarity matrix.",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["contrastive", "contrastive.*"]),
    install_requires=[
        "jax>=0.10",
        "flax>=0.12",
        "optax",
        "orbax-checkpoint",
        "tensorflow-datasets",
        "ml_collections",
        "chex",
        "numpy",
        "tqdm",
        "matplotlib",
        "grain",
        "array_record",
    ],
    extras_require={
        "dev": [
            "pytest",
            "pytest-xdist",
            "scikit-learn",
        ],
    },
)
