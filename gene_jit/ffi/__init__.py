"""FFI: `ffi/load`, `ffi/defun`, structs and callbacks. Tier 0 calls through ctypes;
tier 1 calls the symbol's address directly."""
