"""contrastive: memory-efficient large-batch contrastive learning in JAX/Flax."""
import setuptools

setuptools.setup(
    name="contrastive",
    version="0.1.0",
    description="Large-batch contrastive learning (CLIP, SigLIP, SimCLR, ...) in JAX/Flax "
    "with a blockwise loss that never holds the N x N similarity matrix.",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["contrastive", "contrastive.*"]),
    package_data={"contrastive.data": ["assets/*.txt.gz"],  # CLIP's BPE vocab (1.3 MB)
                  "contrastive.evaluate": ["assets/*.json"]},  # CLIP's ImageNet prompts
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
        "tensorboardX",  # TensorBoard event files without TensorFlow (contrastive/train/events.py)
        "matplotlib",
        "grain",
        "array_record",
        "scikit-learn",  # the embedded default dataset is sklearn's handwritten digits
        "sentencepiece>=0.2,<0.3",  # tokenizer for real text, trained locally
        "tokenizers",  # Hugging Face tokenizer.json files (Rust wheel, no torch)
        "ftfy",  # CLIP's BPE cleans text with ftfy.fix_text, as OpenCLIP does
        "regex",  # CLIP's BPE pre-tokenizer uses \p{L} / \p{N} classes
        "pillow",  # tfds encodes/decodes images with it when TensorFlow is absent
        "simplejpeg",  # libjpeg-turbo JPEG decoding into NumPy, 2x PIL's speed (data/decode.py)
        "opencv-python-headless",  # crop resampling, 7x PIL's bilinear (data/image_text.py)
        "importlib_resources",  # tfds 4.9 needs it to build package-defined datasets on 3.11
        "safetensors",  # published checkpoints (OpenCLIP, timm), read with its numpy API: no torch
    ],
    extras_require={
        "dev": [
            "pytest",
            "pytest-xdist",
            "scipy",
            "tensorboard",  # reads the event files back in the tests; `tensorboard --logdir`
            "nbclient",  # tests execute notebooks/ (with nbformat and a python3 kernel)
            "nbformat",
            "ipykernel",
        ],
        # libtpu: compile for a TPU topology on any host (experiments/pod_compile.py); pin
        # it to the installed jax with `pip install "jax[tpu]==$(python -c 'import jax;
        # print(jax.__version__)')"` if pip picks another jax.
        "tpu": ["jax[tpu]>=0.10"],
        # The CUDA plugin and libraries (several GB): compile for H100/H200 without a GPU
        # (experiments/pod_compile.py --topology=h100:1x1x8); pin to the installed jax as above.
        "cuda": ["jax[cuda12]>=0.10"],
    },
)
