"""Independent Python side of the correctness tests.

Nothing here imports the engine. Modules:

- ``gguf_io``: a small GGUF v2/v3 reader and writer that handles tensors of any type
  id as raw bytes (including ik_llama.cpp's IQ1_BN/IQ2_BN and bitnet.cpp's I2_S).
- ``formats``: numpy encoders/decoders for every tensor type the engine supports.
- ``act_quant``: numpy emulation of the activation quantisation each weight format's
  reference implementation applies before its integer dot product.
- ``forward``: a float64 reference forward pass (``ReferenceModel``).
- ``model_factory``: tiny deterministic random models in every family and format.
- ``golden``: loader for the golden cases in tests/data/golden (materialises models
  into tests/.cache).
"""
import os
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]
CACHE_DIR = Path(os.environ.get("BITNET_TEST_CACHE", TESTS_DIR / ".cache"))
GOLDEN_DIR = TESTS_DIR / "data" / "golden"
