"""Frontend: the reader (text to forms with spans) and the tier-0 compiler (forms to
Python AST to CPython bytecode)."""
