"""Runtime: values, printing, operators, builtins, the standard library and error types."""
