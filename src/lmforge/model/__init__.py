"""Models: loading (``loader``), GGUF conversion (``gguf``), quantization (``quant``) and training
methods (``adapters``).

bitsandbytes logs a warning on import on every CPU machine without the optional ``kernels``
package (it falls back to its own CPU code, which works); peft imports bitsandbytes whenever it
is installed, so that line would open every run. It is silenced here; real errors still show.
"""

import logging

logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
