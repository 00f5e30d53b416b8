"""Codegen: typed IR to LLVM IR through llvmlite, optimised and compiled by its JIT;
entry trampolines, guards and the on-disk cache (tier 1)."""
