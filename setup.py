"""Packaging for pixel-keras."""

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent

setup(
    name="pixel-keras",
    version="0.1.0",
    description=(
        "A Keras 3 model zoo of autoregressive image models "
        "(PixelCNN, PixelRNN, Gated PixelCNN) with exact bits/dim."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # The preset cards in zoo/ ship inside the package as pixel_keras/_zoo.
    packages=[*find_packages(include=["pixel_keras", "pixel_keras.*"]), "pixel_keras._zoo"],
    package_dir={"pixel_keras._zoo": "zoo"},
    package_data={"pixel_keras._zoo": ["*/*.json", "*/*.md", "*/*.h5", "*/*.png"]},
    include_package_data=True,
    install_requires=[
        "keras>=3.6,<4",
        "tensorflow-cpu>=2.18,<2.22; platform_machine=='x86_64'",
        "tensorflow>=2.18,<2.22; platform_machine!='x86_64'",
        "tensorflow-probability>=0.25,<0.26",
        # TF >= 2.20 no longer depends on it; keras.callbacks.TensorBoard needs it.
        "tensorboard>=2.18,<2.22",
        "tensorflow-datasets>=4.9.7,<4.10",
        "importlib_resources>=5",
        "numpy>=1.26,<3",
        "scikit-learn>=1.3",
        "Pillow>=10",
        "h5py>=3.10",
        "tqdm>=4.60",
        "setuptools>=65",
    ],
    extras_require={
        # jax is in the test extras so the TF-vs-JAX parity tests run by default.
        "test": ["pytest>=8", "pytest-timeout>=2.3", "jax>=0.4.30,<0.11"],
        "jax": ["jax>=0.4.30,<0.11"],
    },
    entry_points={"console_scripts": ["pixel-keras=pixel_keras.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
