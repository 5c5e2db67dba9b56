//! Parameters, initialisation, spectral norm, safetensors I/O.
