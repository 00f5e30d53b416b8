"""Typed IR: an SSA IR with basic blocks and explicit types, built from a Gene function's
forms and the argument types tier 0 observed; printer, verifier and passes."""
